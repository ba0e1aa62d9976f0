//! The sandbox agent on its own, for the crate's tests and for backends that copy a small
//! program into a box. The `sandpit` binary serves the same role with `sandpit agent`.

fn main() -> std::process::ExitCode {
    if let Some(code) = sandpit_sandbox::agent::as_idmap_helper() {
        return code;
    }
    sandpit_sandbox::agent::main()
}
