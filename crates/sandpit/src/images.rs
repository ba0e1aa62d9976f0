//! `sandpit images build|list`: the docker environment's base images, made on this host.

use std::path::PathBuf;

use sandpit_sandbox::images::{self, BuildOptions};
use sandpit_server::Config;

fn dir(config: &Config, dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(|| config.docker.images_dir(&config.data_dir))
}

fn mb(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}

pub async fn build(
    config: &Config,
    to: Option<PathBuf>,
    mirror: Option<String>,
) -> anyhow::Result<()> {
    let dir = dir(config, to);
    let options = BuildOptions {
        mirror: mirror.unwrap_or_else(|| config.docker.debian_mirror.clone()),
    };
    println!(
        "building base images into {} from {}",
        dir.display(),
        options.mirror
    );
    let built = images::build(&dir, &options, |step| println!("  {step}")).await?;
    println!("\n| image | tags | size | seconds |\n|---|---|---|---|");
    for image in &built {
        println!(
            "| {} | {} | {} | {:.0} |",
            image.name,
            image.tags.join(", "),
            mb(image.size_bytes),
            image.seconds
        );
    }
    println!(
        "\n{} is current; new docker sessions get these images.",
        images::current_store(&dir).unwrap_or(dir).display()
    );
    Ok(())
}

pub async fn list(config: &Config, from: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = dir(config, from);
    let listed = images::list(&dir).await?;
    if listed.is_empty() {
        anyhow::bail!(
            "no base images in {}: run `sandpit images build`",
            dir.display()
        );
    }
    for image in listed {
        println!(
            "{}  {:>7}  {}",
            image.id,
            mb(image.size_bytes),
            image.tags.join(", ")
        );
    }
    Ok(())
}
