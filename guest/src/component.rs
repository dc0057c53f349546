//! Binds the pure modules to the WIT world: the exported `keys` and `archive` interfaces, and the
//! host's `archive-io` stream adapted to `Read`/`Write`.

use std::io::{self, Read, Write};

use crate::bindings::exports::s3cache::guest::{archive, keys};
use crate::bindings::s3cache::guest::types::Error;
use crate::bindings::s3cache::guest::{archive_io, environment};
use crate::bindings::{Member, PackOptions, PackSummary, Resolution, Root, TemplateContext, UnpackLimits, UnpackReport};
use crate::unpack::SourceFailed;
use crate::{pack, template, unpack, walk};

struct Component;

impl keys::Guest for Component {
    fn resolve(template: String, context: TemplateContext, roots: Vec<Root>) -> Result<Resolution, Error> {
        let key = template::render(&template, &context, &|name: &str| environment::get(name))?;
        let found = walk::find(&roots)?;
        Ok(Resolution { key, found })
    }
}

impl archive::Guest for Component {
    fn pack(roots: Vec<Root>, members: Vec<Member>, options: PackOptions) -> Result<PackSummary, Error> {
        Ok(pack::pack(&roots, &members, &options, HostSink)?)
    }

    fn unpack(roots: Vec<Root>, limits: UnpackLimits) -> Result<UnpackReport, Error> {
        Ok(unpack::unpack(&roots, &limits, HostSource, 1 << 20)?)
    }
}

/// `archive-io.write` as a `Write`.
struct HostSink;

impl Write for HostSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        archive_io::write(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `archive-io.read` as a `Read`. Host errors are marked so they are not mistaken for corrupt data.
struct HostSource;

impl Read for HostSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let max = buf.len().min(u32::MAX as usize) as u32;
        let chunk = archive_io::read(max).map_err(|e| io::Error::other(SourceFailed(e)))?;
        if chunk.len() > buf.len() {
            return Err(io::Error::other(SourceFailed(format!("host returned {} bytes for a read of {max}", chunk.len()))));
        }
        buf[..chunk.len()].copy_from_slice(&chunk);
        Ok(chunk.len())
    }
}

crate::bindings::export!(Component with_types_in crate::bindings);
