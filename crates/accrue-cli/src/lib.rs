//! The `accrue` command's library side: the small tools (`accrue embed`, `accrue info`,
//! `accrue import`) as functions returning serialisable summaries, so that they can be tested
//! and scripted without the command line. The binary (`src/main.rs`) parses arguments and
//! prints.
#![deny(missing_docs)]

pub mod tools;
