//! Compression of the archive, of its `files` member and of database dumps:
//! the names engine-backup uses for each compressor, detection by magic bytes,
//! and streaming encoders and decoders.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A compressor, or none.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    #[default]
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

impl Codec {
    /// Every codec, for tests and listings.
    pub const ALL: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Bzip2,
        Codec::Xz,
        Codec::Zstd,
    ];

    /// Parse a compressor option value as engine-backup does (`gzip`, `bzip2`,
    /// `xz`, `None`; case-sensitive), plus `zstd`.
    pub fn from_option(value: &str) -> Result<Codec> {
        match value {
            "gzip" => Ok(Codec::Gzip),
            "bzip2" => Ok(Codec::Bzip2),
            "xz" => Ok(Codec::Xz),
            "zstd" => Ok(Codec::Zstd),
            "None" => Ok(Codec::None),
            _ => Err(Error::usage(format!("invalid compressor '{value}'"))),
        }
    }

    /// The option value for this codec (`None` for no compression).
    pub fn option_name(self) -> &'static str {
        match self {
            Codec::None => "None",
            other => other.config_value(),
        }
    }

    /// Parse a compressor value of the archive's `config` member (empty for none).
    pub fn from_config_value(value: &str) -> Option<Codec> {
        match value {
            "" => Some(Codec::None),
            "gzip" => Some(Codec::Gzip),
            "bzip2" => Some(Codec::Bzip2),
            "xz" => Some(Codec::Xz),
            "zstd" => Some(Codec::Zstd),
            _ => None,
        }
    }

    /// The value written to the archive's `config` member: the command name, or
    /// empty for none.
    pub fn config_value(self) -> &'static str {
        match self {
            Codec::None => "",
            Codec::Gzip => "gzip",
            Codec::Bzip2 => "bzip2",
            Codec::Xz => "xz",
            Codec::Zstd => "zstd",
        }
    }

    /// The codec whose magic bytes start `head`; `None` when no known magic matches.
    pub fn detect(head: &[u8]) -> Codec {
        if head.starts_with(&[0x1f, 0x8b]) {
            Codec::Gzip
        } else if head.starts_with(b"BZh") {
            Codec::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Codec::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Codec::Zstd
        } else {
            Codec::None
        }
    }

    /// The level used when none is given: engine-backup's command-line
    /// defaults (gzip 6, bzip2 9, xz 6), and zstd 1: on database dumps it
    /// compresses within 1 % of level 3 at about half the CPU time, and the
    /// compressor is what a backup on few cores waits for (BENCHMARKS.md).
    pub fn default_level(self) -> Option<i32> {
        match self {
            Codec::None => None,
            Codec::Gzip => Some(6),
            Codec::Bzip2 => Some(9),
            Codec::Xz => Some(6),
            Codec::Zstd => Some(1),
        }
    }

    fn level_range(self) -> (i32, i32) {
        match self {
            Codec::None => (0, 0),
            Codec::Gzip | Codec::Xz => (0, 9),
            Codec::Bzip2 => (1, 9),
            Codec::Zstd => (1, 19),
        }
    }

    /// A streaming compressor writing to `inner`. `threads` is used by zstd
    /// and xz (values above 1 select their multithreaded encoders).
    pub fn encoder<W: Write>(
        self,
        inner: W,
        level: Option<i32>,
        threads: u32,
    ) -> Result<Encoder<W>> {
        let level = match (level, self.default_level()) {
            (_, None) => 0,
            (Some(l), Some(_)) => {
                let (lo, hi) = self.level_range();
                if l < lo || l > hi {
                    return Err(Error::usage(format!(
                        "invalid compression level {l} for {}: use {lo} to {hi}",
                        self.option_name()
                    )));
                }
                l
            }
            (None, Some(d)) => d,
        };
        let threads = threads.max(1);
        Ok(match self {
            Codec::None => Encoder::None(inner),
            Codec::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::new(level as u32),
            )),
            Codec::Bzip2 => Encoder::Bzip2(bzip2::write::BzEncoder::new(
                inner,
                bzip2::Compression::new(level as u32),
            )),
            Codec::Xz => {
                let stream = if threads > 1 {
                    liblzma::stream::MtStreamBuilder::new()
                        .threads(threads)
                        .preset(level as u32)
                        .check(liblzma::stream::Check::Crc64)
                        .encoder()
                } else {
                    liblzma::stream::Stream::new_easy_encoder(
                        level as u32,
                        liblzma::stream::Check::Crc64,
                    )
                }
                .map_err(|e| Error::failed(format!("cannot start the xz compressor: {e}")))?;
                Encoder::Xz(liblzma::write::XzEncoder::new_stream(inner, stream))
            }
            Codec::Zstd => {
                let mut enc = zstd::Encoder::new(inner, level)
                    .map_err(|e| Error::failed(format!("cannot start the zstd compressor: {e}")))?;
                if threads > 1 {
                    enc.multithread(threads).map_err(|e| {
                        Error::failed(format!("cannot start zstd with {threads} threads: {e}"))
                    })?;
                }
                enc.include_checksum(true)
                    .map_err(|e| Error::failed(format!("cannot configure zstd: {e}")))?;
                Encoder::Zstd(enc)
            }
        })
    }

    /// A streaming decompressor reading from `inner`. Concatenated streams
    /// (as `cat a.gz b.gz` or parallel compressors produce) are read whole.
    pub fn decoder<'a, R: Read + Send + 'a>(self, inner: R) -> Result<Box<dyn Read + Send + 'a>> {
        Ok(match self {
            Codec::None => Box::new(inner),
            Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(inner)),
            Codec::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(inner)),
            Codec::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(inner)),
            Codec::Zstd => {
                Box::new(zstd::Decoder::new(inner).map_err(|e| {
                    Error::failed(format!("cannot start the zstd decompressor: {e}"))
                })?)
            }
        })
    }

    /// The content of the file at `path` (a member compressed with this
    /// codec), decompressed as it is read.
    pub fn open_decoded(self, path: &Path) -> Result<Box<dyn Read + Send>> {
        let input = std::fs::File::open(path).map_err(|e| Error::io_path("open", path, e))?;
        self.decoder(BufReader::with_capacity(1 << 20, input))
    }

    /// The file at `path` (compressed with this codec) ready to be read at
    /// any offset: the file itself when it is not compressed, else its
    /// decompressed copy `<name>.uncompressed` in `dir`.
    pub fn seekable_copy(self, path: &Path, dir: &Path) -> Result<PathBuf> {
        if self == Codec::None {
            return Ok(path.to_path_buf());
        }
        let out_path = dir.join(format!(
            "{}.uncompressed",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("dump")
        ));
        self.decompress_into(path, &out_path, &|| false)?;
        Ok(out_path)
    }

    /// Decompress the file at `path` into a new file `out_path`, checking
    /// `stop` between blocks: a `true` ends the copy with an error (and the
    /// partial file removed), for work that is no longer wanted.
    pub fn decompress_into(
        self,
        path: &Path,
        out_path: &Path,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<()> {
        let mut file =
            std::fs::File::create(out_path).map_err(|e| Error::io_path("create", out_path, e))?;
        let copied = self.decompress_to(path, &mut file, out_path, stop);
        if copied.is_err() {
            let _ = std::fs::remove_file(out_path);
        }
        copied
    }

    /// Decompress the file at `path` into `out` (named `out_name` in
    /// messages). `stop` as for [`Codec::decompress_into`].
    pub fn decompress_to(
        self,
        path: &Path,
        out: &mut dyn Write,
        out_name: &Path,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<()> {
        let mut decoder = self.open_decoded(path)?;
        let mut out = Stoppable { inner: out, stop };
        match io::copy(&mut decoder, &mut out) {
            Ok(_) => Ok(()),
            Err(e) => {
                if stop() {
                    return Err(Error::failed(format!(
                        "decompressing {} was stopped",
                        path.display()
                    )));
                }
                if e.kind() == io::ErrorKind::StorageFull {
                    return Err(Error::io_path("write", out_name, e));
                }
                Err(Error::invalid(format!(
                    "{} does not decompress with {}: {e}",
                    path.display(),
                    self.option_name()
                )))
            }
        }
    }

    /// Detect the codec of `inner` from its first bytes and return it with a
    /// decompressor of the whole stream.
    pub fn detect_decoder<'a, R: Read + Send + 'a>(
        inner: R,
    ) -> io::Result<(Codec, Box<dyn Read + Send + 'a>)> {
        let mut buffered = BufReader::with_capacity(64 * 1024, inner);
        let codec = Codec::detect(buffered.fill_buf()?);
        let decoder = codec
            .decoder(buffered)
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok((codec, decoder))
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.option_name())
    }
}

/// A compressing writer; [`Encoder::finish`] ends the stream and returns the
/// inner writer.
pub enum Encoder<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Bzip2(bzip2::write::BzEncoder<W>),
    Xz(liblzma::write::XzEncoder<W>),
    Zstd(zstd::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// Write the end of the compressed stream and return the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Bzip2(e) => e.finish(),
            Encoder::Xz(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }

    /// The inner writer, for progress accounting.
    pub fn get_ref(&self) -> &W {
        match self {
            Encoder::None(w) => w,
            Encoder::Gzip(e) => e.get_ref(),
            Encoder::Bzip2(e) => e.get_ref(),
            Encoder::Xz(e) => e.get_ref(),
            Encoder::Zstd(e) => e.get_ref(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Bzip2(e) => e.write(buf),
            Encoder::Xz(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Bzip2(e) => e.flush(),
            Encoder::Xz(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

/// A writer that fails once `stop` says so.
struct Stoppable<'s, W> {
    inner: W,
    stop: &'s (dyn Fn() -> bool + Sync),
}

impl<W: Write> Write for Stoppable<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if (self.stop)() {
            return Err(io::Error::other("stopped"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_names_follow_engine_backup() {
        assert_eq!(Codec::from_option("gzip").unwrap(), Codec::Gzip);
        assert_eq!(Codec::from_option("None").unwrap(), Codec::None);
        assert_eq!(Codec::from_option("zstd").unwrap(), Codec::Zstd);
        assert_eq!(
            Codec::from_option("none").unwrap_err().to_string(),
            "invalid compressor 'none'"
        );
        assert!(Codec::from_option("GZIP").is_err());
        for codec in Codec::ALL {
            assert_eq!(Codec::from_option(codec.option_name()).unwrap(), codec);
            assert_eq!(Codec::from_config_value(codec.config_value()), Some(codec));
        }
        assert_eq!(Codec::from_config_value("None"), None);
    }

    #[test]
    fn round_trip_and_detect_every_codec() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for codec in Codec::ALL {
            for threads in [1, 2] {
                let mut enc = codec.encoder(Vec::new(), None, threads).unwrap();
                enc.write_all(&data).unwrap();
                let packed = enc.finish().unwrap();
                assert_eq!(Codec::detect(&packed), codec, "{codec}");
                let (found, mut dec) = Codec::detect_decoder(&packed[..]).unwrap();
                assert_eq!(found, codec);
                let mut out = Vec::new();
                dec.read_to_end(&mut out).unwrap();
                assert_eq!(out, data, "{codec} threads={threads}");
            }
        }
    }

    #[test]
    fn truncated_streams_fail() {
        let data = vec![42u8; 100_000];
        for codec in Codec::ALL.into_iter().filter(|c| *c != Codec::None) {
            let mut enc = codec.encoder(Vec::new(), Some(1), 1).unwrap();
            enc.write_all(&data).unwrap();
            let packed = enc.finish().unwrap();
            let cut = &packed[..packed.len() - 4];
            let mut out = Vec::new();
            let result = codec.decoder(cut).unwrap().read_to_end(&mut out);
            assert!(result.is_err(), "{codec} accepted a truncated stream");
        }
    }

    #[test]
    fn bad_levels_are_usage_errors() {
        let err = Codec::Gzip.encoder(Vec::new(), Some(12), 1).err().unwrap();
        assert_eq!(
            err.to_string(),
            "invalid compression level 12 for gzip: use 0 to 9"
        );
    }
}
