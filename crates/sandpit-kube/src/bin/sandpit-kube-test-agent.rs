//! The agent, for this crate's tests: the fake kubelet starts it as a fake pod's container
//! (a test can only name a binary of its own crate, `CARGO_BIN_EXE_…`).

fn main() -> std::process::ExitCode {
    if let Some(code) = sandpit_sandbox::agent::as_idmap_helper() {
        return code;
    }
    sandpit_sandbox::agent::main()
}
