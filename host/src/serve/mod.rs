//! `s3cache serve`: GitHub's cache protocol (v1 REST and v2 Twirp) over the store. So far only its
//! authentication and scopes ([`auth`]).

pub mod auth;
