//! Operating the router: the check command, logging, running until a signal.

pub mod check;
pub mod demo;
pub mod logging;
pub mod run;
