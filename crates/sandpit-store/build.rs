//! `sqlx::migrate!` embeds the migration files at compile time, but a proc macro cannot tell
//! Cargo to watch them: rebuild when one is added or edited.
fn main() {
    println!("cargo::rerun-if-changed=migrations");
}
