//! The PostgreSQL engine: on the configured server, each user gets a role and a database of
//! the same name (`sp_<user id>`), owned by that role, that no other role may connect to.
//! Apps have no network, so each user's apps reach the server through a Unix socket of
//! their own (`/run/postgresql/.s.PGSQL.5432` in their sandboxes, a directory bound from
//! `data_dir/user-databases/<user>/pg`), which the server splices to the PostgreSQL server's
//! TCP port: the role's password is what admits them, as for any client. The viewer connects
//! as the user's role too, so it can do nothing the user's own apps could not.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use dashmap::DashMap;
use futures::TryStreamExt;
use rand::Rng;
use sandpit_sandbox::{Volume, VolumeTarget};
use secrecy::ExposeSecret;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{
    Column as _, Connection, Executor, PgConnection, PgPool, Row, Statement as _, TypeInfo,
};
use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::config::UserDatabasesConfig;
use super::model::{Column, QueryResult, RowsPage, TableList, TableView};
use crate::error::ApiError;

/// Where apps find the socket's directory (libpq's and node-postgres' usual place).
pub const MOUNT: &str = "/run/postgresql";
const SOCKET: &str = ".s.PGSQL.5432";

pub struct Postgres {
    admin: PgPool,
    server: PgConnectOptions,
    root: PathBuf,
    config: UserDatabasesConfig,
    /// Each user's socket, while its splicer runs.
    forwarders: DashMap<Uuid, tokio::task::JoinHandle<()>>,
}

/// A PostgreSQL identifier, quoted. Names here are `sp_` and hex, but quoting costs nothing.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal. Only passwords of letters and digits are ever put in one, but the rule
/// holds for any text.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

pub fn name_for(user_id: Uuid) -> String {
    format!("sp_{}", user_id.simple())
}

fn password() -> String {
    rand::rngs::OsRng
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// The URL an app is given: through its socket directory.
pub fn app_url(name: &str, password: Option<&str>) -> String {
    let password = password.map_or_else(|| ":…".to_owned(), |p| format!(":{p}"));
    format!("postgresql://{name}{password}@/{name}?host={MOUNT}")
}

fn db_error(e: sqlx::Error) -> ApiError {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            match code.as_ref() {
                // read_only_sql_transaction
                "25006" => super::viewer_error(
                    "read_only",
                    "this statement writes to the database: run it in write mode".into(),
                ),
                // query_canceled (the statement timeout)
                "57014" => super::viewer_error("statement_timeout", db.message().to_owned()),
                _ => super::viewer_error("sql_error", db.message().to_owned()),
            }
        }
        _ => ApiError::internal(anyhow::Error::new(e).context("the user's PostgreSQL database")),
    }
}

impl Postgres {
    pub fn new(
        url: &secrecy::SecretString,
        root: PathBuf,
        config: UserDatabasesConfig,
    ) -> anyhow::Result<Self> {
        let server = PgConnectOptions::from_str(url.expose_secret())
            .map_err(|e| anyhow::anyhow!("user_databases.postgres_url: {e}"))?;
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_lazy_with(server.clone());
        Ok(Self {
            admin,
            server,
            root,
            config,
            forwarders: DashMap::new(),
        })
    }

    fn socket_dir(&self, user_id: Uuid) -> PathBuf {
        super::sqlite::dir(&self.root, user_id).join("pg")
    }

    pub fn volume(&self, user_id: Uuid) -> Volume {
        Volume {
            source: self.socket_dir(user_id),
            target: VolumeTarget::parse(MOUNT).expect("a valid volume target"),
            read_only: false,
        }
    }

    /// A new role password.
    pub fn password() -> String {
        password()
    }

    /// Makes the role (with `password`) and the database, dropping a half-made one of this
    /// user's first.
    pub async fn create(&self, name: &str, password: &str) -> Result<(), ApiError> {
        self.drop_objects(name).await?;
        let statements = [
            format!(
                // It inherits: on PostgreSQL 15+ a database's owner may create in its
                // `public` schema only through its implicit pg_database_owner membership.
                "CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOCREATEDB NOCREATEROLE \
                 NOREPLICATION CONNECTION LIMIT {}",
                ident(name),
                literal(password),
                self.config.max_connections + 2
            ),
            format!("CREATE DATABASE {} OWNER {}", ident(name), ident(name)),
            format!("REVOKE ALL ON DATABASE {} FROM PUBLIC", ident(name)),
        ];
        for sql in statements {
            if let Err(e) = self.admin.execute(sql.as_str()).await {
                let _ = self.drop_objects(name).await;
                return Err(admin_error(e));
            }
        }
        Ok(())
    }

    pub async fn rotate(&self, name: &str) -> Result<String, ApiError> {
        let password = password();
        let sql = format!("ALTER ROLE {} PASSWORD {}", ident(name), literal(&password));
        self.admin
            .execute(sql.as_str())
            .await
            .map_err(admin_error)?;
        Ok(password)
    }

    pub async fn drop_objects(&self, name: &str) -> Result<(), ApiError> {
        for sql in [
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(name)),
            format!("DROP ROLE IF EXISTS {}", ident(name)),
        ] {
            self.admin
                .execute(sql.as_str())
                .await
                .map_err(admin_error)?;
        }
        Ok(())
    }

    /// Starts the user's socket (if it is not running) for their apps to reach the server.
    pub fn ensure_forwarder(&self, user_id: Uuid) -> Result<(), ApiError> {
        if let Some(running) = self.forwarders.get(&user_id)
            && !running.is_finished()
        {
            return Ok(());
        }
        let dir = self.socket_dir(user_id);
        let listener = bind_socket(&dir).map_err(|e| {
            ApiError::internal(
                anyhow::Error::new(e)
                    .context(format!("the PostgreSQL socket in {}", dir.display())),
            )
        })?;
        let target = (self.server.get_host().to_owned(), self.server.get_port());
        let permits = Arc::new(Semaphore::new(self.config.max_connections as usize));
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    // Out of descriptors, say: give the others a moment to close.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    // Over the user's connections: the app sees the connection close.
                    continue;
                };
                let target = target.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        self.forwarders.insert(user_id, task);
        Ok(())
    }

    pub fn stop_forwarder(&self, user_id: Uuid) {
        if let Some((_, task)) = self.forwarders.remove(&user_id) {
            task.abort();
        }
    }

    async fn connect(&self, name: &str, password: &str) -> Result<PgConnection, ApiError> {
        let options = self
            .server
            .clone()
            .username(name)
            .password(password)
            .database(name);
        PgConnection::connect_with(&options)
            .await
            .map_err(|e| ApiError::Upstream {
                public: "your database cannot be reached now",
                detail: format!("connecting as {name}: {e}"),
            })
    }

    /// Runs `sql` (one statement, checked by preparing it) in a transaction that is read-only
    /// unless `write`, under the statement timeout; rows come back as text.
    async fn run(
        &self,
        conn: &mut PgConnection,
        sql: &str,
        write: bool,
    ) -> Result<(Vec<Column>, Vec<Vec<Value>>, bool, u64), ApiError> {
        // One statement only: the extended protocol refuses more, and a `COMMIT;` in front
        // would otherwise end the read-only transaction.
        let prepared = conn.prepare(sql).await.map_err(db_error)?;
        let columns: Vec<Column> = prepared
            .columns()
            .iter()
            .map(|c| Column {
                name: c.name().to_owned(),
                ty: c.type_info().name().to_lowercase(),
                primary_key: false,
                not_null: false,
            })
            .collect();
        let begin = if write { "BEGIN" } else { "BEGIN READ ONLY" };
        conn.execute(begin).await.map_err(db_error)?;
        // A query first: from then on the transaction cannot be made read-write.
        let setup = format!(
            "SELECT 1; SET LOCAL statement_timeout = {}",
            self.config.statement_timeout_ms
        );
        conn.execute(sqlx::raw_sql(&setup))
            .await
            .map_err(db_error)?;
        let max = self.config.max_rows as usize;
        let result = async {
            let mut rows = Vec::new();
            let mut affected = 0;
            let mut truncated = false;
            let mut stream = sqlx::raw_sql(sql).fetch_many(&mut *conn);
            while let Some(item) = stream.try_next().await.map_err(db_error)? {
                match item {
                    sqlx::Either::Left(done) => affected += done.rows_affected(),
                    sqlx::Either::Right(row) if rows.len() < max => {
                        rows.push(self.cells(&row, &columns));
                    }
                    sqlx::Either::Right(_) => truncated = true,
                }
            }
            Ok::<_, ApiError>((rows, truncated, affected))
        }
        .await;
        let end = if write && result.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        conn.execute(end).await.map_err(db_error)?;
        let (rows, truncated, affected) = result?;
        Ok((columns, rows, truncated, affected))
    }

    /// A row of the simple protocol (every value as text), as JSON by its column's type.
    fn cells(&self, row: &sqlx::postgres::PgRow, columns: &[Column]) -> Vec<Value> {
        let max = self.config.max_cell_chars as usize;
        (0..row.len())
            .map(|i| {
                let Ok(Some(text)) = row.try_get_unchecked::<Option<&str>, _>(i) else {
                    return Value::Null;
                };
                let ty = columns.get(i).map_or("", |c| c.ty.as_str());
                match ty {
                    "int2" | "int4" | "int8" | "oid" => text
                        .parse::<i64>()
                        .map_or_else(|_| Value::String(text.to_owned()), Value::from),
                    "bool" => Value::Bool(text == "t"),
                    // The text form of binary is `\x` and its hex.
                    "bytea" => {
                        let hex = text.strip_prefix("\\x").unwrap_or(text);
                        let shown: String = hex.chars().take(max / 2 * 2).collect();
                        let cut = if shown.len() < hex.len() { "…" } else { "" };
                        serde_json::json!({"bytes": hex.len() / 2, "hex": format!("{shown}{cut}")})
                    }
                    _ if text.chars().count() > max => {
                        Value::String(text.chars().take(max).chain(['…']).collect())
                    }
                    _ => Value::String(text.to_owned()),
                }
            })
            .collect()
    }

    pub async fn tables(&self, name: &str, password: &str) -> Result<TableList, ApiError> {
        let mut conn = self.connect(name, password).await?;
        let tables = self.describe(&mut conn, None).await?;
        Ok(TableList { tables })
    }

    /// The `public` schema's tables and views with their columns and row counts: all of
    /// them, or only the one named `only`.
    async fn describe(
        &self,
        conn: &mut PgConnection,
        only: Option<&str>,
    ) -> Result<Vec<TableView>, ApiError> {
        let found = sqlx::query(
            "SELECT c.oid::int8, c.relname::text, c.relkind::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') \
             AND ($1::text IS NULL OR c.relname = $1) ORDER BY c.relname",
        )
        .bind(only)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
        let mut tables = Vec::new();
        for row in found {
            let (oid, table, kind): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
            let columns = table_columns(conn, oid).await?;
            let is_table = kind == "r" || kind == "p";
            let rows = if is_table {
                let sql = format!("SELECT count(*) FROM public.{}", ident(&table));
                let (_, counted, _, _) = self.run(conn, &sql, false).await?;
                counted
                    .first()
                    .and_then(|r| r.first())
                    .and_then(Value::as_u64)
            } else {
                None
            };
            tables.push(TableView {
                name: table,
                kind: if is_table { "table" } else { "view" }.into(),
                rows,
                columns,
            });
        }
        Ok(tables)
    }

    pub async fn rows(
        &self,
        name: &str,
        password: &str,
        table: &str,
        offset: u64,
        limit: u32,
    ) -> Result<RowsPage, ApiError> {
        let mut conn = self.connect(name, password).await?;
        let Some(found) = self.describe(&mut conn, Some(table)).await?.pop() else {
            return Err(super::viewer_error(
                "no_such_table",
                format!("there is no table or view {table:?}"),
            ));
        };
        let keys: Vec<String> = found
            .columns
            .iter()
            .filter(|c| c.primary_key)
            .map(|c| ident(&c.name))
            .collect();
        let order = if keys.is_empty() {
            String::new()
        } else {
            format!(" ORDER BY {}", keys.join(", "))
        };
        let sql = format!(
            "SELECT * FROM public.{}{order} LIMIT {limit} OFFSET {offset}",
            ident(table)
        );
        let (_, rows, _, _) = self.run(&mut conn, &sql, false).await?;
        Ok(RowsPage {
            columns: found.columns,
            rows,
            offset,
            limit,
            total: found.rows.unwrap_or(0),
        })
    }

    pub async fn query(
        &self,
        name: &str,
        password: &str,
        sql: &str,
        write: bool,
    ) -> Result<QueryResult, ApiError> {
        let mut conn = self.connect(name, password).await?;
        let (columns, rows, truncated, affected) = self.run(&mut conn, sql, write).await?;
        let returns_rows = !columns.is_empty();
        Ok(QueryResult {
            columns,
            rows,
            truncated,
            rows_affected: (!returns_rows).then_some(affected),
        })
    }
}

async fn table_columns(conn: &mut PgConnection, oid: i64) -> Result<Vec<Column>, ApiError> {
    let rows = sqlx::query(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
         EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary \
                 AND a.attnum = ANY (i.indkey)) \
         FROM pg_attribute a WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 \
         AND NOT a.attisdropped ORDER BY a.attnum",
    )
    .bind(oid)
    .fetch_all(conn)
    .await
    .map_err(db_error)?;
    Ok(rows
        .into_iter()
        .map(|r| Column {
            name: r.get(0),
            ty: r.get(1),
            not_null: r.get(2),
            primary_key: r.get(3),
        })
        .collect())
}

/// The server could not do what it is configured to do on its PostgreSQL server: the cause
/// is logged (`Upstream`'s detail), the answer says only that.
fn admin_error(e: sqlx::Error) -> ApiError {
    ApiError::Upstream {
        public: "the database server refused or cannot be reached now",
        detail: format!("user_databases.postgres_url: {e}"),
    }
}

/// A fresh socket in `dir` (made if missing), open to the user's sandboxes.
fn bind_socket(dir: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    let path = dir.join(SOCKET);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}
