//! The HTTP route table: every route is added with the [`Access`] it needs, through
//! [`Routes`], so a route without a rule cannot exist. The same table builds the router (each
//! endpoint behind its guard) and is published by [`route_table`] for the tests that send every
//! route every kind of credential.

use axum::{
    extract::Request,
    handler::Handler,
    http::Method,
    middleware::Next,
    response::{IntoResponse, Response},
    routing::MethodRouter,
    Router,
};
use modelbay_core::Access;
use serde::Serialize;

use crate::{
    auth::{authorize, Peer},
    AppState,
};

/// One route and what it needs.
#[derive(Debug, Clone, Serialize)]
pub struct RouteRule {
    #[serde(serialize_with = "method_name")]
    pub method: Method,
    /// The route's pattern, as the router matches it (`/v2/models/{model}/infer`).
    pub path: &'static str,
    pub access: Access,
}

fn method_name<S: serde::Serializer>(method: &Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(method.as_str())
}

struct Entry {
    rule: RouteRule,
    endpoint: MethodRouter<AppState>,
}

/// Routes under construction, each with its access rule.
#[derive(Default)]
pub(crate) struct Routes {
    entries: Vec<Entry>,
}

impl Routes {
    fn add(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        endpoint: MethodRouter<AppState>,
    ) -> Self {
        self.entries.push(Entry {
            rule: RouteRule {
                method,
                path,
                access,
            },
            endpoint,
        });
        self
    }

    pub(crate) fn get<H, T>(self, path: &'static str, access: Access, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::GET, path, access, axum::routing::get(handler))
    }

    pub(crate) fn post<H, T>(self, path: &'static str, access: Access, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::POST, path, access, axum::routing::post(handler))
    }

    pub(crate) fn put<H, T>(self, path: &'static str, access: Access, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::PUT, path, access, axum::routing::put(handler))
    }

    pub(crate) fn delete<H, T>(self, path: &'static str, access: Access, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::DELETE, path, access, axum::routing::delete(handler))
    }

    pub(crate) fn merge(mut self, other: Routes) -> Self {
        self.entries.extend(other.entries);
        self
    }

    pub(crate) fn rules(&self) -> Vec<RouteRule> {
        self.entries.iter().map(|e| e.rule.clone()).collect()
    }

    /// The router: each endpoint behind the guard of its own rule.
    pub(crate) fn into_router(self, state: &AppState) -> Router<AppState> {
        let mut router = Router::new();
        for Entry { rule, endpoint } in self.entries {
            let access = rule.access;
            let guarded = endpoint.route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                move |state, request, next| guard(state, access, request, next),
            ));
            router = router.route(rule.path, guarded);
        }
        router
    }
}

/// Lets a request through to its handler only with the access its route needs, and hands the
/// handler its caller.
async fn guard(
    axum::extract::State(state): axum::extract::State<AppState>,
    access: Access,
    mut request: Request,
    next: Next,
) -> Response {
    if access == Access::Open {
        return next.run(request).await;
    }
    let peer = request.extensions().get::<Peer>().copied();
    match authorize(&state, access, request.headers(), peer.as_ref()) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        // OpenAI clients expect OpenAI's error shape.
        Err(e) if request.uri().path().starts_with("/v1/") => e.openai().into_response(),
        Err(e) => e.into_response(),
    }
}

/// Every HTTP route with the access it needs.
pub fn route_table() -> Vec<RouteRule> {
    crate::routes().rules()
}

#[cfg(test)]
mod tests {
    /// The OpenAPI document describes every route of the table, by method.
    #[test]
    fn the_openapi_document_lists_every_route() {
        let spec: serde_json::Value =
            serde_json::from_str(include_str!("../assets/openapi.json")).unwrap();
        for rule in super::route_table() {
            let method = rule.method.as_str().to_ascii_lowercase();
            assert!(
                spec["paths"][rule.path][method.as_str()].is_object(),
                "{} {} is not in assets/openapi.json",
                rule.method,
                rule.path
            );
        }
    }

    /// And describes nothing else: every operation in the document is a route of the table.
    #[test]
    fn every_route_in_the_openapi_document_exists() {
        let spec: serde_json::Value =
            serde_json::from_str(include_str!("../assets/openapi.json")).unwrap();
        let table = super::route_table();
        let methods = ["get", "put", "post", "delete", "patch", "head", "options"];
        for (path, item) in spec["paths"].as_object().unwrap() {
            for method in methods.iter().filter(|m| item.get(**m).is_some()) {
                assert!(
                    table
                        .iter()
                        .any(|r| r.path == path && r.method.as_str().eq_ignore_ascii_case(method)),
                    "{method} {path} is in assets/openapi.json but not in the router"
                );
            }
        }
    }
}
