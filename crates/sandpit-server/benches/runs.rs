//! What a run costs: plain process vs. the sandbox crate (warm sandbox, warm pool with reset) vs.
//! `POST /api/v1/runs`, measured side by side on this machine, plus cold sandbox creation and
//! throughput at several concurrencies.
//!
//! `cargo bench -p sandpit-server --bench runs` (release profile; needs root for the native
//! backend). Knobs: `BENCH_RUNS` (runs per latency row, default 200), `BENCH_COLD` (cold sandbox
//! creations, default 50), `BENCH_SECONDS` (seconds per throughput cell, default 3).
//!
//! Latency rows are interleaved (one plain run, one sandboxed run, …) so drift in host load hits
//! every column alike. The server runs in this process on its own runtime with JSON request logs
//! written to a sink, as in `auth_me`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use sandpit_sandbox::host::CgroupMode;
use sandpit_sandbox::{
    Backend, NativeBackend, NativeConfig, Pool, ProcessSpec, Sandbox, SandboxLimits, SandboxSpec,
};

mod common;
use common::{
    Samples, agent_argv, bench_config, env_or, load_average, logs_to_sink, serve_signed_up,
};

const TARGET_WARM_ADDED_MS: f64 = 2.0;
const TARGET_COLD_MS: f64 = 20.0;
const TARGET_THROUGHPUT_PCT: f64 = 80.0;

fn cgroup_description() -> String {
    match sandpit_sandbox::host::cgroup_mode() {
        Ok(CgroupMode::V2 { root, controllers }) => {
            format!("v2 at {} ({})", root.display(), controllers.join(","))
        }
        Ok(CgroupMode::V1 { controllers }) => format!(
            "v1 ({})",
            controllers
                .iter()
                .map(|(c, _)| c.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ),
        Ok(CgroupMode::None) => "none".into(),
        Err(e) => format!("unknown ({e})"),
    }
}

// ---------------------------------------------------------------------------------------------
// The ways of running one program

fn plain(argv: &[&str], cwd: &Path) -> Duration {
    let t = Instant::now();
    let status = Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("plain process");
    let elapsed = t.elapsed();
    assert!(status.success(), "{argv:?} failed: {status}");
    elapsed
}

async fn in_sandbox(sandbox: &dyn Sandbox, argv: &[&str]) -> Result<(), String> {
    let out = sandbox
        .spawn(ProcessSpec::new(argv.iter().copied()))
        .await
        .map_err(|e| e.to_string())?
        .output(b"")
        .await
        .map_err(|e| e.to_string())?;
    if out.exit.code == Some(0) {
        Ok(())
    } else {
        Err(format!(
            "{argv:?} in a sandbox: {:?} {}",
            out.exit,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Acquire → run → release (the reset included). Returns the total and the release part.
async fn through_pool(pool: &Arc<Pool>, argv: &[&str]) -> Result<(Duration, Duration), String> {
    let t = Instant::now();
    let lease = pool.acquire().await.map_err(|e| e.to_string())?;
    in_sandbox(lease.sandbox(), argv).await?;
    let r = Instant::now();
    lease.release().await;
    Ok((t.elapsed(), r.elapsed()))
}

/// One keep-alive HTTP/1.1 connection to the server.
struct ApiClient {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    auth: String,
}

impl ApiClient {
    async fn connect(addr: SocketAddr, token: &str) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        Self {
            sender,
            addr,
            auth: format!("Bearer {token}"),
        }
    }

    async fn run(&mut self, body: &Bytes) -> Result<(), String> {
        let req = hyper::Request::post("/api/v1/runs")
            .header("host", self.addr.to_string())
            .header("authorization", &self.auth)
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .expect("request");
        let res = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = res.status();
        let bytes = res
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        if status.is_success() && v["state"] == "done" && v["run"]["status"] == "ok" {
            Ok(())
        } else {
            Err(format!("{status}: {v}"))
        }
    }
}

fn run_body(runtime: &str, file: &str, content: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({"runtime": runtime, "files": [{"name": file, "content": content}]})
            .to_string(),
    )
}

// ---------------------------------------------------------------------------------------------
// Output

struct Row {
    command: String,
    path: String,
    samples: Samples,
    baseline: Option<f64>,
    target: String,
    note: String,
}

fn print_latency(rows: &[Row]) {
    println!("| command | path | median | p99 | × plain | added (median) | target | notes |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        let med = r.samples.median_ms();
        let (ratio, added) = match r.baseline {
            Some(b) => (format!("{:.2}×", med / b), format!("{:+.2} ms", med - b)),
            None => ("1.00×".into(), "—".into()),
        };
        println!(
            "| {} | {} | {med:.2} ms | {:.2} ms | {ratio} | {added} | {} | {} |",
            r.command,
            r.path,
            r.samples.p99_ms(),
            r.target,
            r.note
        );
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let runs: usize = env_or("BENCH_RUNS", 200);
    let cold_n: usize = env_or("BENCH_COLD", 50);
    let seconds: f64 = env_or("BENCH_SECONDS", 3.0);
    let concurrencies = [1usize, 2, 8];
    let load_before = load_average();

    logs_to_sink();

    let agent = agent_argv();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("bench runtime");

    let backend = match rt.block_on(NativeBackend::new(NativeConfig {
        agent_argv: agent.clone(),
        uids: 61000..61100,
        seccomp: true,
        ready_timeout: Duration::from_secs(10),
    })) {
        Ok(b) => Arc::new(b),
        Err(e) => {
            eprintln!("the native sandbox backend is unavailable: {e}");
            std::process::exit(1);
        }
    };
    let backend_dyn: Arc<dyn Backend> = backend.clone();
    let spec = SandboxSpec::new(SandboxLimits::default());
    let features = backend.report().features.join(",");

    // The server: warm pool of 8 and 8 run slots so admission does not cap concurrency 8.
    let dir = tempfile::TempDir::new().expect("tempdir");
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("server runtime");
    let (addr, token) = server_rt.block_on(async {
        let mut config = bench_config(dir.path(), agent.clone());
        config.runs.warm_pool = 8;
        config.runs.max_concurrent = 8;
        serve_signed_up(config).await
    });

    // Scripts for the apples-to-apples plain baselines of the API rows.
    let scripts = tempfile::TempDir::new().expect("tempdir");
    std::fs::write(scripts.path().join("main.sh"), ":\n").expect("main.sh");
    std::fs::write(scripts.path().join("main.py"), "pass\n").expect("main.py");
    let cwd = scripts.path();

    let errors = AtomicU64::new(0);
    let note_err = |r: Result<(), String>| {
        if let Err(e) = r
            && errors.fetch_add(1, Ordering::Relaxed) < 5
        {
            eprintln!("error: {e}");
        }
    };

    // ---- 1. Per-run latency ------------------------------------------------------------------
    let warm = rt.block_on(backend.create(&spec)).expect("warm sandbox");
    let pool = rt.block_on(async {
        let pool = Pool::new(backend_dyn.clone(), spec.clone(), 1);
        while pool.ready() < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        pool
    });
    let mut api = rt.block_on(ApiClient::connect(addr, &token));
    let warmup = 10;
    let mut rows = Vec::new();

    for argv in [&["/bin/true"][..], &["/usr/bin/python3", "-c", "pass"][..]] {
        let (mut p, mut w, mut l, mut reset) = (
            Samples::new(),
            Samples::new(),
            Samples::new(),
            Samples::new(),
        );
        for i in 0..warmup + runs {
            let tp = plain(argv, cwd);
            let tw = rt.block_on(async {
                let t = Instant::now();
                note_err(in_sandbox(warm.as_ref(), argv).await);
                t.elapsed()
            });
            let tl = rt.block_on(through_pool(&pool, argv));
            if i >= warmup {
                p.push(tp);
                w.push(tw);
                match tl {
                    Ok((total, r)) => {
                        l.push(total);
                        reset.push(r);
                    }
                    Err(e) => note_err(Err(e)),
                }
            }
        }
        let cmd = format!("`{}`", argv.join(" "));
        let base = p.median_ms();
        let target = |s: &Samples| {
            let added = s.median_ms() - base;
            format!(
                "≤ +{TARGET_WARM_ADDED_MS:.0} ms: {}",
                verdict(added <= TARGET_WARM_ADDED_MS)
            )
        };
        rows.push(Row {
            command: cmd.clone(),
            path: "plain process".into(),
            samples: p,
            baseline: None,
            target: String::new(),
            note: "spawn + wait, stdio null".into(),
        });
        let tw_target = target(&w);
        rows.push(Row {
            command: cmd.clone(),
            path: "warm sandbox (crate)".into(),
            samples: w,
            baseline: Some(base),
            target: tw_target,
            note: "spawn → output, same sandbox".into(),
        });
        let note = format!(
            "release (reset) median {:.2} ms, p99 {:.2} ms",
            reset.median_ms(),
            reset.p99_ms()
        );
        rows.push(Row {
            command: cmd,
            path: "warm pool (crate)".into(),
            samples: l,
            baseline: Some(base),
            target: String::new(),
            note,
        });
    }

    for (argv, runtime, file, content) in [
        (&["/bin/bash", "main.sh"][..], "bash", "main.sh", ":"),
        (
            &["/usr/bin/python3", "main.py"][..],
            "python3",
            "main.py",
            "pass",
        ),
    ] {
        let body = run_body(runtime, file, content);
        let (mut p, mut a) = (Samples::new(), Samples::new());
        for i in 0..warmup + runs {
            let tp = plain(argv, cwd);
            let ta = rt.block_on(async {
                let t = Instant::now();
                let r = api.run(&body).await;
                let d = t.elapsed();
                // The server resets the sandbox after answering: let that finish before the
                // next plain run is timed.
                tokio::time::sleep(Duration::from_millis(5)).await;
                (d, r)
            });
            if i >= warmup {
                p.push(tp);
                match ta {
                    (d, Ok(())) => a.push(d),
                    (_, Err(e)) => note_err(Err(e)),
                }
            }
        }
        let cmd = format!("`{}` (`{content}`)", argv.join(" "));
        let base = p.median_ms();
        rows.push(Row {
            command: cmd.clone(),
            path: "plain process".into(),
            samples: p,
            baseline: None,
            target: String::new(),
            note: "script file in a temp dir".into(),
        });
        rows.push(Row {
            command: cmd,
            path: "`POST /api/v1/runs`".into(),
            samples: a,
            baseline: Some(base),
            target: String::new(),
            note: format!("runtime `{runtime}`, keep-alive, warm_pool 8"),
        });
    }

    // ---- 2. Cold sandbox creation --------------------------------------------------------------
    let cold = rt.block_on(async {
        let mut s = Samples::new();
        for i in 0..cold_n + 3 {
            let t = Instant::now();
            let sandbox = backend.create(&spec).await.expect("cold sandbox");
            let d = t.elapsed();
            if i >= 3 {
                s.push(d);
            }
            sandbox.destroy().await.expect("destroy");
        }
        s
    });

    // ---- 3. Throughput --------------------------------------------------------------------------
    let python = ["/usr/bin/python3", "-c", "pass"];
    let api_body = run_body("python3", "main.py", "pass");
    let window = Duration::from_secs_f64(seconds);
    let mut throughput = Vec::new();
    for &c in &concurrencies {
        // Plain: c threads spawning.
        let plain_rate = {
            let deadline = Instant::now() + window;
            let started = Instant::now();
            let count: u64 = std::thread::scope(|s| {
                let handles: Vec<_> = (0..c)
                    .map(|_| {
                        s.spawn(|| {
                            let mut n = 0u64;
                            while Instant::now() < deadline {
                                plain(&python, cwd);
                                n += 1;
                            }
                            n
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().expect("thread")).sum()
            });
            count as f64 / started.elapsed().as_secs_f64()
        };
        // Sandbox crate: c warm sandboxes, one per worker.
        let sandbox_rate = rt.block_on(async {
            let mut boxes = Vec::new();
            for _ in 0..c {
                boxes.push(Arc::new(backend.create(&spec).await.expect("sandbox")));
            }
            let deadline = Instant::now() + window;
            let started = Instant::now();
            let tasks: Vec<_> = boxes
                .iter()
                .cloned()
                .map(|sb| {
                    tokio::spawn(async move {
                        let (mut n, mut err) = (0u64, 0u64);
                        while Instant::now() < deadline {
                            match in_sandbox(sb.as_ref().as_ref(), &python).await {
                                Ok(()) => n += 1,
                                Err(_) => err += 1,
                            }
                        }
                        (n, err)
                    })
                })
                .collect();
            let mut count = 0;
            for t in tasks {
                let (n, e) = t.await.expect("task");
                count += n;
                if e > 0 {
                    errors.fetch_add(e, Ordering::Relaxed);
                }
            }
            let rate = count as f64 / started.elapsed().as_secs_f64();
            for sb in boxes {
                let _ = sb.destroy().await;
            }
            rate
        });
        // API: c keep-alive clients.
        let api_rate = rt.block_on(async {
            let mut clients = Vec::new();
            for _ in 0..c {
                clients.push(ApiClient::connect(addr, &token).await);
            }
            // Let the pool refill after the previous cell.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let deadline = Instant::now() + window;
            let started = Instant::now();
            let tasks: Vec<_> = clients
                .into_iter()
                .map(|mut client| {
                    let body = api_body.clone();
                    tokio::spawn(async move {
                        let (mut n, mut err) = (0u64, 0u64);
                        while Instant::now() < deadline {
                            match client.run(&body).await {
                                Ok(()) => n += 1,
                                Err(e) => {
                                    if err == 0 {
                                        eprintln!("api error: {e}");
                                    }
                                    err += 1;
                                }
                            }
                        }
                        (n, err)
                    })
                })
                .collect();
            let mut count = 0;
            for t in tasks {
                let (n, e) = t.await.expect("task");
                count += n;
                if e > 0 {
                    errors.fetch_add(e, Ordering::Relaxed);
                }
            }
            count as f64 / started.elapsed().as_secs_f64()
        });
        throughput.push((c, plain_rate, sandbox_rate, api_rate));
    }

    // ---- Report -----------------------------------------------------------------------------------
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|e| format!("unknown ({e})"));
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!("## sandpit runs bench (release build)");
    println!();
    println!(
        "Host: kernel {kernel}; cgroup {}; {cpus} CPUs; load average {load_before} (start) → {} (end)",
        cgroup_description(),
        load_average()
    );
    println!("Sandbox features: {features}");
    println!(
        "Settings: BENCH_RUNS={runs} (interleaved, after {warmup} warm-up), BENCH_COLD={cold_n}, BENCH_SECONDS={seconds}"
    );
    println!();
    println!("### Per-run wall time");
    println!();
    print_latency(&rows);
    println!();
    println!("### Cold sandbox creation (`backend.create` until ready; destroy not counted)");
    println!();
    println!("| samples | median | p99 | target |");
    println!("|---|---|---|---|");
    println!(
        "| {} | {:.2} ms | {:.2} ms | ≤ {TARGET_COLD_MS:.0} ms: {} |",
        cold.0.len(),
        cold.median_ms(),
        cold.p99_ms(),
        verdict(cold.median_ms() <= TARGET_COLD_MS)
    );
    println!();
    println!(
        "### Throughput, `python3 -c pass` (API: runtime python3, `pass`), {seconds} s per cell"
    );
    println!();
    println!(
        "| concurrency | plain runs/s | sandbox crate runs/s | % of plain | API runs/s | % of plain | target (c=8) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (c, p, s, a) in &throughput {
        let target = if *c == 8 {
            format!(
                "≥ {TARGET_THROUGHPUT_PCT:.0} %: crate {}, API {}",
                verdict(s / p * 100.0 >= TARGET_THROUGHPUT_PCT),
                verdict(a / p * 100.0 >= TARGET_THROUGHPUT_PCT)
            )
        } else {
            String::new()
        };
        println!(
            "| {c} | {p:.0} | {s:.0} | {:.0} % | {a:.0} | {:.0} % | {target} |",
            s / p * 100.0,
            a / p * 100.0
        );
    }
    let errors = errors.load(Ordering::Relaxed);
    println!();
    println!("Errors: {errors}");

    rt.block_on(async {
        let _ = warm.destroy().await;
        pool.shutdown().await;
    });
    drop(server_rt);
    if errors > 0 {
        eprintln!("{errors} runs failed");
        std::process::exit(1);
    }
}
