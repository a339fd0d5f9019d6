//! `kubectl-ots`: a kubectl plugin (`kubectl ots …`) to share Secrets as one-time links with the
//! ots-operator, to look at, reissue and burn those shares, and to list the servers they can use.

#[path = "../plugin/mod.rs"]
mod plugin;

fn main() -> std::process::ExitCode {
    plugin::main()
}
