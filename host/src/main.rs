//! The `s3cache` command: everything it does is in the library's command-line front end.

fn main() -> std::process::ExitCode {
    s3cache::frontends::cli::main()
}
