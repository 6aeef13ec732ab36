//! Kinto Admin served from the API's origin (`admin_dir`), as Kinto's admin plugin serves
//! it: what a browser loading `/v1/admin/` asks for.

use reqwest::Method;
use serde_json::Value;

use crate::kinto::Server;

/// A stand-in for Kinto Admin's build directory (`build` in the returned directory), with
/// a file beside it that must not be served.
fn build_dir() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let build = dir.path().join("build");
    std::fs::create_dir_all(build.join("assets")).unwrap();
    std::fs::write(
        build.join("index.html"),
        r#"<html><script src="/v1/admin/assets/index-1.js"></script></html>"#,
    )
    .unwrap();
    std::fs::write(build.join("assets/index-1.js"), "console.log(1);").unwrap();
    std::fs::write(build.join("VERSION"), "6.4.1\n").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
    let build = build.display().to_string();
    (dir, build)
}

/// The status line and body of a request sent as written (clients normalise `..` away).
async fn verbatim(server: &Server, target: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = server.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

async fn raw(
    server: &Server,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = server.http.request(method, format!("{}{path}", server.url));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn the_console_is_served_at_v1_admin() {
    let (_dir, build) = build_dir();
    let server = Server::start_with(|s| s.admin_dir = Some(build)).await;

    // Without the slash, a redirect: the console finds the API by cutting its URL at /admin/.
    let (status, headers, _) = raw(&server, Method::GET, "/v1/admin", &[]).await;
    assert_eq!(status, 307);
    assert_eq!(headers["location"], "admin/");

    let (status, headers, body) = raw(&server, Method::GET, "/v1/admin/", &[]).await;
    assert_eq!(status, 200);
    assert!(body.contains("/v1/admin/assets/index-1.js"), "{body}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    // Revalidated, never stored stale after an upgrade.
    assert_eq!(headers["cache-control"], "no-cache");

    let (status, headers, body) =
        raw(&server, Method::GET, "/v1/admin/assets/index-1.js", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, "console.log(1);");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    let modified = headers["last-modified"].to_str().unwrap().to_owned();
    let (status, _, _) = raw(
        &server,
        Method::GET,
        "/v1/admin/assets/index-1.js",
        &[("if-modified-since", &modified)],
    )
    .await;
    assert_eq!(status, 304);

    // Nothing outside the directory, and Kinto's 404 for what is not there.
    for target in [
        "/v1/admin/../secret.txt",
        "/v1/admin/%2e%2e/secret.txt",
        "/v1/admin/..%2fsecret.txt",
    ] {
        let answer = verbatim(&server, target).await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{target}: {answer}");
        assert!(
            !answer.contains("secret\r\n") && !answer.ends_with("secret"),
            "{answer}"
        );
    }
    server
        .get("/v1/admin/missing.js", None)
        .await
        .assert_error(404, 111);

    // The root URL announces it, with the build's version.
    let hello = server.get("/v1/", None).await;
    assert_eq!(hello.body["capabilities"]["admin"]["version"], "6.4.1");
    // The API around it is unchanged.
    assert_eq!(server.get("/v1/__heartbeat__", None).await.status, 200);
}

#[tokio::test]
async fn without_admin_dir_there_is_no_console() {
    let server = Server::start().await;
    server.get("/v1/admin", None).await.assert_error(404, 111);
    server
        .get("/v1/admin/index.html", None)
        .await
        .assert_error(404, 111);
    let hello = server.get("/v1/", None).await;
    assert_eq!(hello.body["capabilities"].get("admin"), None::<&Value>);
}

#[test]
fn a_directory_without_index_html_is_refused() {
    let empty = tempfile::tempdir().unwrap();
    let error = settings_server::admin::check_dir(&empty.path().display().to_string()).unwrap_err();
    assert!(error.contains("index.html"), "{error}");
    let (_dir, build) = build_dir();
    assert!(settings_server::admin::check_dir(&build).is_ok());
}
