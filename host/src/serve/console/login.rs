//! Signing in and out. The sign-in form has its own CSRF token in a cookie
//! of its own (double submit), since there is no session to keep it yet.

use super::form::Fields;
use super::page;
use super::session::{self, COOKIE, LOGIN_COOKIE, MAX_AGE};
use crate::serve::db::Role;
use crate::serve::node::Shared;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{DOCTYPE, html};

pub async fn form(State(shared): State<Shared>) -> Response {
    let csrf = match session::random() {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                page::bare("Unavailable", &e),
            )
                .into_response();
        }
    };
    let cookie = session::set_cookie(&shared, LOGIN_COOKIE, &csrf, 3600);
    ([(header::SET_COOKIE, cookie)], sign_in_page(&csrf, None)).into_response()
}

fn sign_in_page(csrf: &str, error: Option<&str>) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (page::head("Sign in"))
                body {
                    main #main .narrow {
                        h1 { "Roster console" }
                        @if let Some(e) = error { (page::notice("error", e)) }
                        form method="post" action="/console/login" {
                            input type="hidden" name="csrf" value=(csrf);
                            fieldset {
                                legend { "Your name and password" }
                                p {
                                    label for="name" { "Name" }
                                    br;
                                    input #name type="text" name="name" autocomplete="username" size="40";
                                }
                                p {
                                    label for="password" { "Password" }
                                    br;
                                    input #password type="password" name="password" autocomplete="current-password" size="40";
                                }
                            }
                            fieldset {
                                legend { "Or an API token" }
                                p {
                                    label for="token" { "API token" }
                                    br;
                                    input #token type="password" name="token" autocomplete="off" size="40";
                                }
                            }
                            p.muted { "Users are made with " code { "roster serve user create" } ", tokens with " code { "roster serve token create" } "; the role decides what you may do." }
                            button.primary type="submit" { "Sign in" }
                        }
                    }
                }
            }
        }
        .into_string(),
    )
}

pub async fn submit(State(shared): State<Shared>, headers: HeaderMap, fields: Fields) -> Response {
    let sent = fields.get("csrf").unwrap_or_default();
    let expected = session::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !session::same(sent, &expected) {
        return (
            StatusCode::FORBIDDEN,
            page::bare(
                "Refused",
                "the sign-in form carries no valid CSRF token: reload it and try again",
            ),
        )
            .into_response();
    }
    let credential = match (fields.text("token"), fields.text("name")) {
        (Some(token), _) => session::Credential::Token(token),
        (None, Some(name)) => session::Credential::User {
            name,
            password: fields.get("password").unwrap_or_default(),
        },
        (None, None) => {
            return (
                StatusCode::BAD_REQUEST,
                sign_in_page(&expected, Some("give your name and password, or a token")),
            )
                .into_response();
        }
    };
    match session::sign_in(&shared, credential).await {
        Ok(Some(id)) => (
            [(
                header::SET_COOKIE,
                session::set_cookie(&shared, COOKIE, &id, MAX_AGE),
            )],
            Redirect::to("/console"),
        )
            .into_response(),
        Ok(None) => (
            StatusCode::UNAUTHORIZED,
            sign_in_page(&expected, Some("unknown token, or wrong name or password")),
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            page::bare("Unavailable", &e),
        )
            .into_response(),
    }
}

pub async fn sign_out(
    State(shared): State<Shared>,
    headers: HeaderMap,
    fields: Fields,
) -> Response {
    if let Err(refused) = session::allowed(&shared, &headers, &fields, Role::Viewer).await {
        return refused;
    }
    if let Err(e) = session::sign_out(&shared, &headers).await {
        return page::unavailable(&e);
    }
    (
        [(
            header::SET_COOKIE,
            session::set_cookie(&shared, COOKIE, "", 0),
        )],
        Redirect::to("/console/login"),
    )
        .into_response()
}
