//! What the store's test suites share: each suite function runs on both engines.

use std::sync::Arc;

use sandpit_store::Store;

/// Generates `mod sqlite` and `mod postgres`, each with one `#[tokio::test]` per suite
/// function, on a fresh migrated database.
macro_rules! engine_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = crate::common::open(&sandpit_testkit::sqlite_url(dir.path()), "sqlite").await;
                    super::$name(store).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let url = sandpit_testkit::postgres_url().await;
                    let store = crate::common::open(&url, "postgres").await;
                    super::$name(store).await;
                }
            )*
        }
    };
}

pub async fn open(url: &str, backend: &str) -> Arc<dyn Store> {
    let store = sandpit_store::connect(url, 4).await.unwrap();
    assert_eq!(store.backend(), backend);
    store.migrate().await.unwrap();
    store
}
