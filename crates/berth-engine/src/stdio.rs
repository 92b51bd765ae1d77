//! A running container's input and terminal, reached through its monitor's sockets: the
//! daemon forwards an attached client's input there (`docker run -i`, `docker attach`)
//! and the client's terminal size (`docker run -t`'s resizes).

use std::io::Write;
use std::os::unix::net::UnixStream;

use crate::model::Status;
use crate::monitor::{CONTROL_SOCKET, STDIN_SOCKET, open_dir, socket_path};
use crate::{Engine, Error, Result};

impl Engine {
    /// A stream into the running container `name`'s stdin (it was created with
    /// `OpenStdin`); closing it closes the container's stdin when it was `StdinOnce`.
    pub fn container_stdin(&self, name: &str) -> Result<UnixStream> {
        self.monitor_socket(name, STDIN_SOCKET, "its stdin is not open (-i)")
    }

    /// Sets the size of the running container `name`'s terminal (`-t`).
    pub fn resize_container(&self, name: &str, rows: u16, columns: u16) -> Result<()> {
        let mut control = self.monitor_socket(name, CONTROL_SOCKET, "it has no terminal (-t)")?;
        let dir = self.container_dir(&self.container(name)?.id);
        control
            .write_all(format!("resize {rows} {columns}\n").as_bytes())
            .map_err(|e| Error::Io(dir, e))
    }

    fn monitor_socket(&self, name: &str, socket: &str, why_none: &str) -> Result<UnixStream> {
        let container = self.container(name)?;
        if container.state.status != Status::Running {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                container.id
            )));
        }
        let dir = self.container_dir(&container.id);
        let dir_fd = open_dir(&dir).map_err(|e| Error::Io(dir.clone(), e))?;
        UnixStream::connect(socket_path(&dir_fd, socket)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                Error::Conflict(format!("container {}: {why_none}", container.id))
            }
            _ => Error::Io(dir.join(socket), e),
        })
    }
}
