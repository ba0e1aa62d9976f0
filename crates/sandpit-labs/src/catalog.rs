//! Every lab a server offers: the built-in ones (embedded in the binary) and those of the
//! folders named in its config. A broken lab is skipped with its problems, never fatal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rust_embed::RustEmbed;

use crate::killercoda;
use crate::lab::Lab;
use crate::load::{self, FolderFiles, LoadOptions, Problem};

#[derive(RustEmbed)]
#[folder = "labs/"]
struct BuiltIn;

/// Where the built-in labs came from, in reports.
pub const BUILT_IN: &str = "built-in";

/// A lab that was not loaded, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    /// `built-in/<name>` or the folder.
    pub source: String,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    labs: BTreeMap<String, Arc<Lab>>,
}

impl Catalog {
    /// The built-in labs, then every lab folder below each of `dirs` (a folder holding a
    /// `lab.toml`, or whose sub-folders do). A slug already taken is refused.
    pub fn load(dirs: &[PathBuf], environments: &[&str]) -> (Catalog, Vec<Skipped>) {
        Self::load_from(true, dirs, environments)
    }

    /// [`Catalog::load`], with or without the built-in labs (`sandpit lab validate DIR`
    /// checks an author's folders alone unless asked for `--built-in`).
    pub fn load_from(
        built_in: bool,
        dirs: &[PathBuf],
        environments: &[&str],
    ) -> (Catalog, Vec<Skipped>) {
        let mut catalog = Catalog::default();
        let mut skipped = Vec::new();
        let built_ins = if built_in {
            built_in_folders()
        } else {
            BTreeMap::new()
        };
        for (name, files) in built_ins {
            let source = format!("{BUILT_IN}/{name}");
            catalog.add(files, source, environments, &mut skipped);
        }
        for dir in dirs {
            let folders = match lab_folders(dir) {
                Ok(f) => f,
                Err(problem) => {
                    skipped.push(Skipped {
                        source: dir.display().to_string(),
                        problems: vec![problem],
                    });
                    continue;
                }
            };
            for folder in folders {
                let source = folder.display().to_string();
                match load::read_dir(&folder).and_then(|files| as_lab(&folder, files)) {
                    Ok(files) => catalog.add(files, source, environments, &mut skipped),
                    Err(problems) => skipped.push(Skipped { source, problems }),
                }
            }
        }
        (catalog, skipped)
    }

    fn add(
        &mut self,
        files: FolderFiles,
        source: String,
        environments: &[&str],
        skipped: &mut Vec<Skipped>,
    ) {
        let options = LoadOptions {
            environments,
            source: source.clone(),
        };
        match load::load(&files, &options) {
            Ok(lab) if self.labs.contains_key(&lab.slug) => skipped.push(Skipped {
                problems: vec![Problem {
                    file: "lab.toml".into(),
                    line: None,
                    message: format!(
                        "slug {:?} is also used by {}",
                        lab.slug, self.labs[&lab.slug].source
                    ),
                }],
                source,
            }),
            Ok(lab) => {
                self.labs.insert(lab.slug.clone(), Arc::new(lab));
            }
            Err(problems) => skipped.push(Skipped { source, problems }),
        }
    }

    pub fn get(&self, slug: &str) -> Option<&Arc<Lab>> {
        self.labs.get(slug)
    }

    /// Every lab, by slug.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Lab>> {
        self.labs.values()
    }

    pub fn len(&self) -> usize {
        self.labs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labs.is_empty()
    }
}

/// The embedded `labs/<name>/…` files grouped by lab folder.
pub fn built_in_folders() -> BTreeMap<String, FolderFiles> {
    let mut folders: BTreeMap<String, FolderFiles> = BTreeMap::new();
    for path in BuiltIn::iter() {
        let Some((name, rel)) = path.split_once('/') else {
            continue;
        };
        if let Some(file) = BuiltIn::get(&path) {
            folders
                .entry(name.to_owned())
                .or_default()
                .insert(rel.to_owned(), file.data.into_owned());
        }
    }
    folders
}

/// A folder's files as a lab's: a Killercoda scenario is imported in memory, its report
/// logged (once: folders are read at start-up).
fn as_lab(folder: &Path, files: FolderFiles) -> Result<FolderFiles, Vec<Problem>> {
    if !killercoda::is_scenario(&files) {
        return Ok(files);
    }
    let name = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match killercoda::import(&files, &name) {
        Ok(imported) => {
            for note in &imported.report.notes {
                tracing::info!(folder = %folder.display(), slug = imported.slug, "killercoda import: {note}");
            }
            Ok(imported.files)
        }
        Err(e) => Err(vec![Problem {
            file: killercoda::INDEX.into(),
            line: None,
            message: e.to_string(),
        }]),
    }
}

/// Whether `dir` is a lab folder: it holds a lab.toml, or a Killercoda scenario's index.json.
fn is_lab_folder(dir: &Path) -> bool {
    dir.join("lab.toml").is_file() || dir.join(killercoda::INDEX).is_file()
}

/// `dir` itself when it is a lab folder (a lab.toml, or a Killercoda scenario's index.json),
/// else its sub-folders that are (sorted).
pub fn lab_folders(dir: &Path) -> Result<Vec<PathBuf>, Problem> {
    if is_lab_folder(dir) {
        return Ok(vec![dir.to_path_buf()]);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Problem {
        file: ".".into(),
        line: None,
        message: format!("cannot read the labs folder: {e}"),
    })?;
    let mut folders: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .filter(|p| is_lab_folder(p))
        .collect();
    folders.sort();
    if folders.is_empty() {
        return Err(Problem {
            file: ".".into(),
            line: None,
            message: "holds no lab.toml (nor index.json), and none of its folders does".into(),
        });
    }
    Ok(folders)
}
