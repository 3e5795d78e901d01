//! The commands: each reads or writes the cluster, then prints one result.

mod analysis_run;
mod create;
mod operate;
mod rollback;
mod set_image;
mod terminate;
mod view;
mod watch;

pub use analysis_run::{get_analysis_run, list_analysis_runs};
pub use create::create_analysis_run;
pub use operate::{abort, pause, promote, restart, resume, retry};
pub use rollback::undo;
pub use set_image::set_image;
pub use terminate::terminate_analysis_run;
pub use view::{OutputFormat, Screen, get, list, status};

use std::io::Write;

use anyhow::Result;

/// Writes to stdout; a closed pipe (`| head`) surfaces as an error `main` ends quietly on.
pub fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}
