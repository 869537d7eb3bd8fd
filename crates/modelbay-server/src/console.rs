//! The web console at `/ui`: the files vite builds from `console/` into `assets/console`
//! (committed, so building the binary never needs Node), embedded in the binary and served with
//! ETags, gzip when the client takes it, and a content security policy that lets the page talk
//! to this server only. The page itself logs in with an API key and uses the public API, so
//! its files need no key.

use std::sync::OnceLock;

use axum::{
    extract::Path,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use modelbay_core::Access;
use sha2::{Digest, Sha256};

use crate::{access::Routes, error::ApiError};

/// No script, style, image or connection from anywhere but this server; no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// One built file of the console.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: [Asset; 3] = [
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../assets/console/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/console/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/console/app.css"),
    },
];

/// What is worked out once per file: its ETag and its gzipped body.
struct Prepared {
    etag: HeaderValue,
    gzip: Vec<u8>,
}

fn prepared() -> &'static [Prepared] {
    static PREPARED: OnceLock<Vec<Prepared>> = OnceLock::new();
    PREPARED.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                let digest = Sha256::digest(asset.body);
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                Prepared {
                    etag: HeaderValue::from_str(&format!("\"{hex}\""))
                        .expect("hex is a valid header value"),
                    gzip: gzip(asset.body),
                }
            })
            .collect()
    })
}

fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(body)
        .and_then(|()| encoder.finish())
        .expect("gzip into memory cannot fail")
}

pub(crate) fn routes() -> Routes {
    Routes::default()
        .get("/ui", Access::Open, to_index)
        .get("/ui/", Access::Open, index)
        .get("/ui/{file}", Access::Open, file)
}

async fn to_index() -> Redirect {
    Redirect::permanent("/ui/")
}

async fn index(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    // Only the built files: the name is compared, never used as a path.
    match ASSETS.iter().position(|asset| asset.name == name) {
        Some(i) => Ok(serve(i, &headers)),
        None => Err(ApiError::not_found("no such console file")),
    }
}

fn serve(i: usize, request: &HeaderMap) -> Response {
    let asset = &ASSETS[i];
    let prepared = &prepared()[i];
    let mut response = if matches_etag(request, &prepared.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else if accepts_gzip(request) {
        let mut r = prepared.gzip.clone().into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        asset.body.into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::ETAG, prepared.etag.clone());
    // The names carry no content hash, so every use revalidates (a 304 when unchanged).
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn matches_etag(request: &HeaderMap, etag: &HeaderValue) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag.as_bytes() == etag.as_bytes())
}

fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    == Some(0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_built_index_loads_the_embedded_script_and_style() {
        let index = std::str::from_utf8(ASSETS[0].body).unwrap();
        for asset in &ASSETS[1..] {
            assert!(
                index.contains(&format!("/ui/{}", asset.name)),
                "index.html does not load {}",
                asset.name
            );
        }
    }

    #[test]
    fn gzip_is_chosen_only_when_accepted() {
        assert!(accepts_gzip(&headers(&[(
            header::ACCEPT_ENCODING,
            "br, gzip;q=0.8"
        )])));
        assert!(!accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, "br")])));
        assert!(!accepts_gzip(&headers(&[(
            header::ACCEPT_ENCODING,
            "gzip;q=0"
        )])));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn a_matching_etag_in_a_list_or_weak_form_matches() {
        let etag = HeaderValue::from_static("\"abc\"");
        assert!(matches_etag(
            &headers(&[(header::IF_NONE_MATCH, "\"x\", W/\"abc\"")]),
            &etag
        ));
        assert!(!matches_etag(
            &headers(&[(header::IF_NONE_MATCH, "\"abd\"")]),
            &etag
        ));
    }

    #[test]
    fn the_gzipped_body_unpacks_to_the_file() {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&prepared()[1].gzip[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, ASSETS[1].body);
    }
}
