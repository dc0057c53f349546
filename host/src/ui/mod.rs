//! What the person at the terminal sees: escaped, secret-scrubbed lines on stderr and GitHub's
//! workflow commands ([`output`]), and the progress bar ([`progress`]).

pub mod output;
pub mod progress;
