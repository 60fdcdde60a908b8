//! A kakehashi node (work in progress).
#![forbid(unsafe_code)]
