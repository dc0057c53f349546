//! Restore, build, save: the whole cache step of a runner, against the default local store
//! (`file://` under the user's cache directory; set `S3CACHE_STORE=s3://bucket/prefix` for S3).
//!
//! Run from a directory with a `target/` to cache:
//! `cargo run --release --example restore-save -- KEY [PATH...]`.

use s3cache::{RestoreOutcome, RestoreRequest, SaveOutcome, SaveRequest, config};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let key = args.next().unwrap_or_else(|| "example-v1".into());
    let paths: Vec<String> = match args.collect::<Vec<_>>() {
        paths if paths.is_empty() => vec!["target".into()],
        paths => paths,
    };

    // The same resolution as the CLI: its settings from S3CACHE_* variables, and the environment.
    let context = config::resolve(&config::Settings::from_env()?, config::process_env(Vec::new()))?;

    match context.restore(&RestoreRequest::new(&key, &paths))? {
        RestoreOutcome::Hit(hit) => println!("restored {} ({} members)", hit.matched_key, hit.members),
        RestoreOutcome::Miss { reason, .. } => {
            println!("miss: {reason}");
            build(&paths)?;
            match context.save(&SaveRequest::new(&key, &paths))? {
                SaveOutcome::Saved { key, bytes, .. } => println!("saved {key} ({bytes} bytes)"),
                other => println!("not saved: {other:?}"),
            }
        }
        RestoreOutcome::Interrupted { .. } => println!("interrupted: nothing restored"),
    }
    Ok(())
}

/// Stands in for the build: makes sure each path exists with something in it.
fn build(paths: &[String]) -> std::io::Result<()> {
    for path in paths {
        std::fs::create_dir_all(path)?;
        std::fs::write(std::path::Path::new(path).join("built.txt"), "built by the example\n")?;
    }
    Ok(())
}
