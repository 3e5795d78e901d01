//! A real Prometheus per test, from the binaries `make cluster-build` caches: on a free loopback
//! port, with storage of its own, scraping nothing. Tests write samples with [`Prometheus::push`]
//! (remote write, through promtool), or keep counters growing with [`Prometheus::feed_counters`]
//! for `rate()` queries, and point the controller at [`Prometheus::url`].

use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

use crate::process::http_get;
use crate::{prometheus_bin_dir, repo_root};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running Prometheus; killed, and its storage removed, when dropped.
pub struct Prometheus {
    address: SocketAddr,
    bin_dir: PathBuf,
    /// Config and TSDB; kept across [`Prometheus::restart`].
    data: TempDir,
    log: PathBuf,
    child: Option<Child>,
}

impl Prometheus {
    /// Starts Prometheus and waits until it is ready.
    pub async fn start() -> Result<Prometheus> {
        let bin_dir = prometheus_bin_dir()?;
        for binary in ["prometheus", "promtool"] {
            let path = bin_dir.join(binary);
            if !path.is_file() {
                bail!("{} is missing: run `make cluster-build`", path.display());
            }
        }
        // The port is released at once, for Prometheus to bind; restart() binds it again.
        let address = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let data = tempfile::Builder::new().prefix("rollouts-prometheus-").tempdir()?;
        // No scrape jobs: every sample is pushed.
        std::fs::write(data.path().join("prometheus.yml"), "global: {}\n")?;
        let log_dir = repo_root().join("target/e2e-logs");
        std::fs::create_dir_all(&log_dir)?;
        let log = log_dir.join(format!("prometheus-{}.log", address.port()));
        std::fs::File::create(&log)?;
        let mut prometheus = Prometheus { address, bin_dir, data, log, child: None };
        prometheus.launch().await?;
        Ok(prometheus)
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Writes samples in the Prometheus text format, e.g. `request_success_rate{service="canary"}
    /// 0.82`, one per line, stamped with the current time. The remote-write receiver appends
    /// them before it answers, so an instant query made once this returns sees them.
    pub async fn push(&self, exposition: &str) -> Result<()> {
        self.writer().push(exposition).await
    }

    /// [`Prometheus::push`] with every sample stamped `at` instead of now. A series only takes
    /// samples newer than its last one.
    pub async fn push_at(&self, exposition: &str, at: SystemTime) -> Result<()> {
        self.writer().push_at(exposition, at).await
    }

    /// What writes samples to this Prometheus, for a task of its own.
    pub fn writer(&self) -> RemoteWriter {
        RemoteWriter { promtool: self.bin_dir.join("promtool"), url: self.url() }
    }

    /// Feeds counters as a scrape every [`FEED_PERIOD`] would see them: each series of `rates`
    /// (e.g. `("http_requests_total{code=\"200\"}", 9.5)`) grows by its rate per second, and
    /// every write stamps all of them with one time. So `rate()` over any window reads exactly
    /// these rates, and a ratio of them exactly their ratio, from the moment this returns (it
    /// writes two samples a period apart first) until the feed is dropped.
    pub async fn feed_counters<S: AsRef<str>>(&self, rates: &[(S, f64)]) -> Result<CounterFeed> {
        let writer = self.writer();
        let rates: Vec<(String, f64)> =
            rates.iter().map(|(series, rate)| (series.as_ref().to_string(), *rate)).collect();
        let start = SystemTime::now() - FEED_PERIOD;
        let write = move |writer: RemoteWriter, at: SystemTime| {
            let elapsed = at.duration_since(start).unwrap_or_default().as_secs_f64();
            let text: String =
                rates.iter().map(|(series, rate)| format!("{series} {}\n", FEED_BASE + rate * elapsed)).collect();
            async move { writer.push_at(&text, at).await }
        };
        write(writer.clone(), start).await?;
        write(writer.clone(), SystemTime::now()).await?;
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(FEED_PERIOD).await;
                write(writer.clone(), SystemTime::now()).await?;
            }
        });
        Ok(CounterFeed { task })
    }

    /// Sets one series, e.g. `set("request_success_rate{service=\"canary\"}", 0.82)`; NaN and
    /// infinities included.
    pub async fn set(&self, series: &str, value: f64) -> Result<()> {
        let value = match value {
            f64::INFINITY => "+Inf".to_string(),
            f64::NEG_INFINITY => "-Inf".to_string(),
            // Rust prints NaN as "NaN", as the text format wants.
            value => value.to_string(),
        };
        self.push(&format!("{series} {value}")).await
    }

    /// An instant query: the response's `data` (`resultType` and `result`).
    pub async fn query(&self, promql: &str) -> Result<serde_json::Value> {
        let query = form_urlencoded::Serializer::new(String::new()).append_pair("query", promql).finish();
        let (code, body) = http_get(self.address, &format!("/api/v1/query?{query}"))
            .await
            .with_context(|| format!("querying {} for {promql}", self.url()))?;
        let response: serde_json::Value =
            serde_json::from_str(&body).with_context(|| format!("query {promql}: HTTP {code}: {body}"))?;
        if code != 200 || response["status"] != "success" {
            bail!("query {promql}: HTTP {code}: {body}");
        }
        Ok(response["data"].clone())
    }

    /// Kills Prometheus: from now on its port refuses connections.
    pub async fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            // Waiting for the exit blocks: do it on a blocking thread.
            let _ = tokio::task::spawn_blocking(move || kill_and_reap(child)).await;
        }
    }

    /// Starts Prometheus again, stopping it first if it runs, on the same port with the same
    /// storage: what it held before is still there.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await;
        self.launch().await
    }

    async fn launch(&mut self) -> Result<()> {
        let log = OpenOptions::new().append(true).open(&self.log)?;
        let child = Command::new(self.bin_dir.join("prometheus"))
            .arg(format!("--config.file={}", self.data.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", self.data.path().join("tsdb").display()))
            .arg(format!("--web.listen-address={}", self.address))
            .arg("--web.enable-remote-write-receiver")
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting prometheus")?;
        // Held by self at once, so that dropping self kills it whatever happens next.
        self.child = Some(child);
        if let Err(error) = self.wait_ready().await {
            self.stop().await;
            return Err(error);
        }
        Ok(())
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let child = self.child.as_mut().context("prometheus is not running")?;
            if let Some(status) = child.try_wait()? {
                bail!("prometheus exited ({status}) before it was ready\n{}", self.log_tail());
            }
            if let Ok((200, _)) = http_get(self.address, "/-/ready").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("prometheus at {} not ready within {READY_TIMEOUT:?}\n{}", self.url(), self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!("--- last lines of {}:\n{}", self.log.display(), lines[lines.len().saturating_sub(20)..].join("\n"))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            kill_and_reap(child);
        }
    }
}

/// How often [`Prometheus::feed_counters`] writes.
pub const FEED_PERIOD: Duration = Duration::from_secs(2);
/// Where fed counters start: high enough that `rate()` never extrapolates one below zero.
const FEED_BASE: f64 = 1e6;

/// Writes samples to one Prometheus through its remote-write receiver (with promtool).
#[derive(Clone, Debug)]
pub struct RemoteWriter {
    promtool: PathBuf,
    url: String,
}

impl RemoteWriter {
    /// See [`Prometheus::push`].
    pub async fn push(&self, exposition: &str) -> Result<()> {
        let mut child = tokio::process::Command::new(&self.promtool)
            // promtool adds job="promtool" to every series unless told otherwise.
            .args(["push", "metrics", "--label=job=", &self.url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting promtool")?;
        let mut stdin = child.stdin.take().context("promtool has no stdin")?;
        stdin.write_all(exposition.as_bytes()).await?;
        // The text parser fails on a last line without its newline.
        if !exposition.ends_with('\n') {
            stdin.write_all(b"\n").await?;
        }
        drop(stdin);
        let output = child.wait_with_output().await?;
        if !output.status.success() {
            bail!(
                "promtool push metrics failed ({}):\n{}{}\n--- pushed:\n{exposition}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// See [`Prometheus::push_at`]: each sample line gets the text format's timestamp (ms).
    pub async fn push_at(&self, exposition: &str, at: SystemTime) -> Result<()> {
        let millis = at.duration_since(UNIX_EPOCH).context("a time before 1970")?.as_millis();
        let stamped: String = exposition
            .lines()
            .map(|line| match line.trim() {
                "" => String::new(),
                comment if comment.starts_with('#') => format!("{comment}\n"),
                sample => format!("{sample} {millis}\n"),
            })
            .collect();
        self.push(&stamped).await
    }
}

/// Counters that [`Prometheus::feed_counters`] keeps growing; dropping it stops the feed.
pub struct CounterFeed {
    task: JoinHandle<Result<()>>,
}

impl CounterFeed {
    /// Fails if a write has failed (the feed then stopped).
    pub async fn check(&mut self) -> Result<()> {
        if self.task.is_finished() {
            (&mut self.task).await??;
            bail!("the counter feed stopped");
        }
        Ok(())
    }
}

impl Drop for CounterFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn kill_and_reap(mut child: Child) {
    // Fails only when it has exited already; wait() then reaps it.
    let _ = child.kill();
    let _ = child.wait();
}
