//! What the person at the terminal sees: the line renderer of events, escaped and secret-scrubbed, with GitHub's
//! workflow commands ([`output`]), and the progress bar ([`progress`]).

pub mod output;
pub mod progress;
