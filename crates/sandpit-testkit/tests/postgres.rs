//! `postgres_url` against a real server (the one `SANDPIT_TEST_PG_URL` names, or its own).

use sqlx::{Connection, PgConnection};

#[tokio::test]
async fn each_call_gives_a_new_empty_database() {
    let first = sandpit_testkit::postgres_url().await;
    let second = sandpit_testkit::postgres_url().await;
    assert_ne!(first, second);
    for url in [&first, &second] {
        let mut conn = PgConnection::connect(url).await.expect("connect");
        let name: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&mut conn)
            .await
            .expect("current_database");
        assert!(name.starts_with("t_"), "{name}");
        assert!(url.contains(&format!("/{name}")), "{url} names {name}");
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .fetch_one(&mut conn)
        .await
        .expect("count tables");
        assert_eq!(tables, 0);
        // Ours to use: the test user may create objects.
        sqlx::raw_sql("CREATE TABLE probe (id int)")
            .execute(&mut conn)
            .await
            .expect("create a table");
    }
}
