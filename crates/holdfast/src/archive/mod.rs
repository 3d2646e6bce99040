//! The archive file: engine-backup's layout, codecs, writer, reader and manifest.
