//! Runs the binary as a child process and talks to it.

use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sync_proto::hawk::{self, RequestTarget};
use sync_proto::token::Token;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const BINARY: &str = env!("CARGO_BIN_EXE_syncstack");

/// Runs a short command to completion.
pub fn run_syncstack(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(BINARY);
    command
        .current_dir(cwd)
        .args(args)
        .env_remove("SYNCSTACK_MASTER_SECRET");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

/// Runs a short command with `input` on standard input; panics with its output if it fails.
pub fn run_ok(cwd: &Path, args: &[&str], env: &[(&str, &str)], input: &str) -> String {
    let out = run_with_input(cwd, args, env, input);
    assert!(
        out.status.success(),
        "syncstack {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a short command to completion with `input` on standard input.
pub fn run_with_input(cwd: &Path, args: &[&str], env: &[(&str, &str)], input: &str) -> Output {
    use std::io::Write;
    let mut command = std::process::Command::new(BINARY);
    command
        .current_dir(cwd)
        .args(args)
        .env_remove("SYNCSTACK_MASTER_SECRET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A running `syncstack serve`.
pub struct Node {
    child: Mutex<Option<Child>>,
    pid: u32,
    pub url: String,
    pub metrics_url: Option<String>,
    log: Arc<Mutex<String>>,
    secret: Option<String>,
    dir: std::path::PathBuf,
}

impl Node {
    /// Starts `syncstack serve [args] --listen 127.0.0.1:0 --log-format json` in `cwd` and
    /// waits for its ready line.
    pub async fn start_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Node {
        let mut command = Command::new(BINARY);
        command
            .current_dir(cwd)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .env_remove("SYNCSTACK_MASTER_SECRET")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let pid = child.id().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let mut url = None;
        let mut metrics_url = None;
        while url.is_none() {
            let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
                .await
                .expect("the node starts within a minute")
                .unwrap()
                .unwrap_or_else(|| {
                    panic!(
                        "the node exited before it was ready:\n{}",
                        log.lock().unwrap()
                    )
                });
            log.lock().unwrap().push_str(&line);
            log.lock().unwrap().push('\n');
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let fields = &event["fields"];
            if fields["message"] == "serving Prometheus metrics" {
                metrics_url = fields["url"].as_str().map(str::to_owned);
            }
            if fields["message"] == "syncstack ready" {
                url = fields["public_url"]
                    .as_str()
                    .map(|u| u.trim_end_matches('/').to_owned());
            }
        }
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let secret = env
            .iter()
            .find(|(k, _)| *k == "SYNCSTACK_MASTER_SECRET")
            .map(|(_, v)| v.to_string());
        Node {
            child: Mutex::new(Some(child)),
            pid,
            url: url.unwrap(),
            metrics_url,
            log,
            secret,
            dir: cwd.join("syncstack-data"),
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Asks this process's token server for a storage token.
    pub async fn token_for(&self, access_token: &str, key_id: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(format!("{}/1.0/sync/1.5", self.url))
            .header("authorization", format!("Bearer {access_token}"))
            .header("x-keyid", key_id)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// A client for `uid`, with a token minted from this node's secret.
    pub fn client(&self, uid: u64) -> Client {
        let secret = match &self.secret {
            Some(secret) => secret.clone(),
            None => std::fs::read_to_string(self.dir.join("master_secret"))
                .unwrap()
                .trim()
                .to_owned(),
        };
        let token = sync_proto::token::mint(
            &sync_proto::token::MasterSecret::new(secret),
            &sync_proto::token::TokenPayload::new(uid, &self.url, 3600),
        );
        Client::new(&self.url, uid, token)
    }

    /// Sends a signal with kill(1).
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit.
    pub async fn wait(&self) -> std::process::ExitStatus {
        let child = self.child.lock().unwrap().take();
        match child {
            Some(mut child) => {
                tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
                    .await
                    .expect("the node exits within 30 s")
                    .unwrap()
            }
            None => panic!("already waited"),
        }
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn stop(self) {
        self.signal("TERM");
        let status = self.wait().await;
        assert!(status.success(), "exit status {status:?}\n{}", self.log());
    }
}

/// A minimal Hawk-signing client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: url::Url,
    token: Token,
}

impl Client {
    pub fn new(node: &str, uid: u64, token: Token) -> Self {
        Client {
            http: reqwest::Client::new(),
            endpoint: url::Url::parse(&format!("{node}/1.5/{uid}")).unwrap(),
            token,
        }
    }

    /// From the JSON printed by `syncstack token mint`.
    pub fn from_minted(minted: &Value) -> Self {
        let token = Token {
            id: minted["id"].as_str().unwrap().to_owned(),
            key: minted["key"].as_str().unwrap().to_owned(),
        };
        let endpoint = minted["api_endpoint"].as_str().unwrap();
        Client {
            http: reqwest::Client::new(),
            endpoint: url::Url::parse(endpoint).unwrap(),
            token,
        }
    }

    fn signed(&self, method: &str, rest: &str) -> (url::Url, String) {
        let url = url::Url::parse(&format!("{}{rest}", self.endpoint)).unwrap();
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let target = RequestTarget {
            method,
            path_and_query: &path,
            host: url.host_str().unwrap(),
            port: url.port_or_known_default().unwrap(),
        };
        let header = hawk::sign_request(&self.token.id, self.token.key.as_bytes(), &target, None);
        (url, header)
    }

    /// Sends a request; `None` if the connection failed.
    pub async fn try_request(
        &self,
        method: &str,
        rest: &str,
        body: Option<Value>,
    ) -> Option<(u16, Value)> {
        let (url, header) = self.signed(method, rest);
        let mut request = self
            .http
            .request(method.parse().unwrap(), url)
            .header("authorization", header);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.ok()?;
        let status = response.status().as_u16();
        let text = response.text().await.ok()?;
        Some((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    pub async fn request(&self, method: &str, rest: &str, body: Option<Value>) -> (u16, Value) {
        self.try_request(method, rest, body)
            .await
            .expect("the node answers")
    }

    /// Starts a POST whose body is fed through the returned sender.
    pub fn streaming_post(
        &self,
        rest: &str,
    ) -> (
        mpsc::Sender<Vec<u8>>,
        tokio::task::JoinHandle<(u16, String)>,
    ) {
        let (url, header) = self.signed("POST", rest);
        let (sender, receiver) = mpsc::channel::<Vec<u8>>(4);
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            let chunk = receiver.recv().await?;
            Some((Ok::<_, std::io::Error>(chunk), receiver))
        });
        let request = self
            .http
            .post(url)
            .header("authorization", header)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(stream));
        let task = tokio::spawn(async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        });
        (sender, task)
    }
}
