// The web UI is embedded from web/dist at compile time (rust-embed). Cargo only notices changed
// *existing* files by itself; Vite writes new content-hashed names on every build, so watch the
// whole directory.
fn main() {
    println!("cargo:rerun-if-changed=../../web/dist");
}
