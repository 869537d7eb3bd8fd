//! The web console's files: served without a key from the binary itself, with a strict content
//! security policy, ETags (304 when unchanged) and gzip when asked for; any other name under
//! `/ui` is a JSON 404. (The console in a browser is tested by `console/tests/console.test.mjs`.)

use std::io::Read;

use crate::common::TestServer;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_console_is_served_without_a_key_with_etags_gzip_and_a_strict_policy() {
    let server = TestServer::start().await;
    let http = no_redirects();

    let redirect = http.get(server.url("/ui")).send().await.unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/ui/");

    let index = http.get(server.url("/ui/")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    let headers = index.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let policy = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let html = index.text().await.unwrap();
    assert!(
        html.contains("/ui/app.js") && html.contains("/ui/app.css"),
        "{html}"
    );

    // The script: plain, then gzipped (the same bytes once unpacked), then 304 for its ETag.
    let plain = http.get(server.url("/ui/app.js")).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(
        plain.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(plain.headers().get("content-encoding").is_none());
    let etag = plain.headers()["etag"].clone();
    let script = plain.bytes().await.unwrap();
    assert!(script.len() > 10_000, "the built script is embedded");

    let zipped = http
        .get(server.url("/ui/app.js"))
        .header("accept-encoding", "br, gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert_eq!(zipped.headers()["etag"], etag);
    let packed = zipped.bytes().await.unwrap();
    assert!(packed.len() < script.len() / 2);
    let mut unpacked = Vec::new();
    flate2::read::GzDecoder::new(&packed[..])
        .read_to_end(&mut unpacked)
        .unwrap();
    assert_eq!(unpacked, script);

    let cached = http
        .get(server.url("/ui/app.js"))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    assert!(cached.bytes().await.unwrap().is_empty());

    let css = http.get(server.url("/ui/app.css")).send().await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
}

#[tokio::test]
async fn other_names_under_ui_are_a_json_404_and_never_read_a_file() {
    let server = TestServer::start().await;
    let http = no_redirects();
    for path in [
        "/ui/main.ts",
        "/ui/..%2F..%2Fadmin.key",
        "/ui/%2e%2e%2fCargo.toml",
        "/ui/app.js.map",
    ] {
        let response = http.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{path}: {body}");
        assert!(
            !body.to_string().contains("admin.key"),
            "the name is not echoed: {body}"
        );
    }
    // Deeper paths are no route at all.
    let response = http.get(server.url("/ui/a/b")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    // Writing is not a thing the console's files take.
    let response = http.post(server.url("/ui/app.js")).send().await.unwrap();
    assert_eq!(response.status(), 405);
}
