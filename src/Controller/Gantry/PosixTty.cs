using System.Runtime.InteropServices;
using System.Threading.Channels;

namespace SmpRobot.Controller.Gantry;

/// <summary>
/// The few POSIX terminal calls the serial link needs (Linux, glibc). Written by hand because
/// System.IO.Ports cannot open a pseudo-terminal (it sets DTR unconditionally, and a pty has no
/// modem-control lines: ENOTTY), and nothing on the package registry creates one.
/// </summary>
internal static partial class PosixTty
{
    public const int ORdWr = 0x2;
    public const int ONoCtty = 0x100;
    public const int ONonBlock = 0x800;
    public const int OCloExec = 0x80000;

    public const short PollIn = 0x1;
    public const short PollOut = 0x4;
    public const short PollErr = 0x8;
    public const short PollHup = 0x10;
    public const short PollNval = 0x20;

    public const int EIntr = 4;
    public const int EAgain = 11;

    public const int TcsaNow = 0;
    public const int TciFlush = 0;
    public const int TcioFlush = 2;

    public const uint InOpen = 0x20;

    // glibc's struct termios is 60 bytes on x86-64 and arm64; an oversize opaque buffer keeps this
    // code independent of its layout (only tcgetattr/cfmakeraw/tcsetattr touch it).
    private const int TermiosBytes = 256;

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "openpty", SetLastError = true)]
    public static partial int OpenPty(out int master, out int slave, nint name, nint termios, nint winsize);

    [LibraryImport("libc", EntryPoint = "ttyname_r")]
    private static partial int TtyNameR(int fd, Span<byte> buffer, nuint length);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, Span<byte> buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, ReadOnlySpan<byte> buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(Span<PollFd> fds, nuint count, int timeoutMs);

    [LibraryImport("libc", EntryPoint = "tcgetattr", SetLastError = true)]
    private static partial int TcGetAttr(int fd, Span<byte> termios);

    [LibraryImport("libc", EntryPoint = "tcsetattr", SetLastError = true)]
    private static partial int TcSetAttr(int fd, int action, ReadOnlySpan<byte> termios);

    [LibraryImport("libc", EntryPoint = "cfmakeraw")]
    private static partial void CfMakeRaw(Span<byte> termios);

    [LibraryImport("libc", EntryPoint = "tcflush", SetLastError = true)]
    public static partial int TcFlush(int fd, int queue);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(int fd, int command, int argument);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initialValue, int flags);

    [LibraryImport("libc", EntryPoint = "inotify_init1", SetLastError = true)]
    public static partial int InotifyInit1(int flags);

    [LibraryImport("libc", EntryPoint = "inotify_add_watch", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int InotifyAddWatch(int fd, string path, uint mask);

    /// <summary>An IOException carrying the last P/Invoke error.</summary>
    public static IOException LastError(string what)
    {
        var errno = Marshal.GetLastPInvokeError();
        return new IOException($"{what}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})", errno);
    }

    /// <summary>Raw mode: no echo, no line editing, no CR/LF translation, 8 bits (cfmakeraw).</summary>
    public static void MakeRaw(int fd)
    {
        Span<byte> termios = stackalloc byte[TermiosBytes];
        if (TcGetAttr(fd, termios) != 0) throw LastError("tcgetattr");
        CfMakeRaw(termios);
        if (TcSetAttr(fd, TcsaNow, termios) != 0) throw LastError("tcsetattr");
    }

    /// <summary>Sets O_NONBLOCK on a descriptor.</summary>
    public static void SetNonBlocking(int fd)
    {
        const int getFlags = 3, setFlags = 4;
        var flags = Fcntl(fd, getFlags, 0);
        if (flags < 0 || Fcntl(fd, setFlags, flags | ONonBlock) < 0) throw LastError("fcntl");
    }

    /// <summary>The device path of a terminal descriptor, e.g. /dev/pts/3.</summary>
    public static string TtyName(int fd)
    {
        Span<byte> buffer = stackalloc byte[256];
        var error = TtyNameR(fd, buffer, (nuint)buffer.Length);
        if (error != 0) throw new IOException($"ttyname_r: {Marshal.GetPInvokeErrorMessage(error)}", error);
        return System.Text.Encoding.UTF8.GetString(buffer[..buffer.IndexOf((byte)0)]);
    }

    /// <summary>
    /// Unix98 pseudo-terminal slaves live under /dev/pts: they have no modem-control lines, so
    /// System.IO.Ports cannot open them and no DTR pulse can reset the device behind them.
    /// </summary>
    public static bool IsPseudoTerminal(string path)
    {
        try
        {
            var target = File.ResolveLinkTarget(path, returnFinalTarget: true)?.FullName ?? Path.GetFullPath(path);
            return target.StartsWith("/dev/pts/", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Writes everything to a non-blocking descriptor, waiting for room up to <paramref name="stallTimeoutMs"/> at a time.</summary>
    public static void WriteAll(int fd, ReadOnlySpan<byte> data, int stallTimeoutMs)
    {
        while (!data.IsEmpty)
        {
            var n = Write(fd, data, (nuint)data.Length);
            if (n > 0)
            {
                data = data[(int)n..];
                continue;
            }
            var errno = Marshal.GetLastPInvokeError();
            if (n < 0 && errno == EIntr) continue;
            if (n < 0 && errno != EAgain) throw LastError("write");
            Span<PollFd> fds = [new PollFd { Fd = fd, Events = PollOut }];
            var ready = Poll(fds, 1, stallTimeoutMs);
            if (ready == 0) throw new IOException($"write stalled for {stallTimeoutMs} ms: the other end does not read");
            if (ready < 0 && Marshal.GetLastPInvokeError() != EIntr) throw LastError("poll");
        }
    }

    /// <summary>Wakes a thread blocked in <see cref="Poll"/> on <see cref="Fd"/> (an eventfd).</summary>
    public sealed class Waker : IDisposable
    {
        private int _fd;

        public Waker()
        {
            _fd = EventFd(0, OCloExec | ONonBlock);
            if (_fd < 0) throw LastError("eventfd");
        }

        public int Fd => _fd;

        public void Wake()
        {
            Span<byte> one = stackalloc byte[8];
            one[0] = 1;
            _ = Write(_fd, one, 8);
        }

        public void Dispose()
        {
            var fd = Interlocked.Exchange(ref _fd, -1);
            if (fd >= 0) _ = Close(fd);
        }
    }
}

/// <summary>
/// A terminal device opened directly (no System.IO.Ports): raw mode, non-blocking. A dedicated thread waits in poll() and hands what arrives to
/// <see cref="ReadAsync"/>; a hang-up or read error becomes an <see cref="IOException"/> there.
/// </summary>
internal sealed class RawTtyStream : IDisposable
{
    private const int WriteStallTimeoutMs = 2000;

    private readonly int _fd;
    private readonly PosixTty.Waker _waker = new();
    private readonly Channel<byte[]> _received = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly Thread _reader;
    private byte[]? _leftover;
    private int _leftoverOffset;
    private volatile bool _disposed;

    private RawTtyStream(int fd, string path)
    {
        _fd = fd;
        _reader = new Thread(ReaderLoop) { IsBackground = true, Name = "tty reader " + path };
        _reader.Start();
    }

    /// <summary>Opens <paramref name="path"/> read/write without making it the controlling terminal.</summary>
    public static RawTtyStream Open(string path)
    {
        var fd = PosixTty.Open(path, PosixTty.ORdWr | PosixTty.ONoCtty | PosixTty.ONonBlock | PosixTty.OCloExec);
        if (fd < 0) throw PosixTty.LastError("open " + path);
        try
        {
            // No flush of stale input here: a device that resets on open (the simulator's pty) may
            // already have sent its banner, and noise before the banner is ignored by the client.
            PosixTty.MakeRaw(fd);
            return new RawTtyStream(fd, path);
        }
        catch
        {
            _ = PosixTty.Close(fd);
            throw;
        }
    }

    /// <summary>Reads at least one byte; 0 once disposed; IOException when the device hung up.</summary>
    public async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct)
    {
        if (_leftover is null)
        {
            try
            {
                _leftover = await _received.Reader.ReadAsync(ct).ConfigureAwait(false);
                _leftoverOffset = 0;
            }
            catch (ChannelClosedException e)
            {
                if (e.InnerException is IOException io) throw new IOException(io.Message, io);
                return 0;
            }
        }
        var n = Math.Min(buffer.Length, _leftover.Length - _leftoverOffset);
        _leftover.AsSpan(_leftoverOffset, n).CopyTo(buffer.Span);
        _leftoverOffset += n;
        if (_leftoverOffset == _leftover.Length) _leftover = null;
        return n;
    }

    /// <summary>Writes all bytes (callers serialise writes).</summary>
    public void Write(ReadOnlySpan<byte> data)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        PosixTty.WriteAll(_fd, data, WriteStallTimeoutMs);
    }

    private void ReaderLoop()
    {
        var buffer = new byte[4096];
        Span<PosixTty.PollFd> fds = stackalloc PosixTty.PollFd[2];
        try
        {
            while (!_disposed)
            {
                fds[0] = new PosixTty.PollFd { Fd = _fd, Events = PosixTty.PollIn };
                fds[1] = new PosixTty.PollFd { Fd = _waker.Fd, Events = PosixTty.PollIn };
                if (PosixTty.Poll(fds, 2, -1) < 0)
                {
                    if (System.Runtime.InteropServices.Marshal.GetLastPInvokeError() == PosixTty.EIntr) continue;
                    throw PosixTty.LastError("poll");
                }
                if (_disposed || fds[1].Revents != 0) break;
                if (fds[0].Revents == 0) continue;
                var n = PosixTty.Read(_fd, buffer, (nuint)buffer.Length);
                if (n > 0)
                {
                    _received.Writer.TryWrite(buffer.AsSpan(0, (int)n).ToArray());
                    continue;
                }
                var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
                if (n < 0 && (errno == PosixTty.EAgain || errno == PosixTty.EIntr)) continue;
                // EIO or end of file: the device went away (the pty master closed, the adapter was unplugged).
                throw n == 0 ? new IOException("the device closed the line") : PosixTty.LastError("read");
            }
            _received.Writer.TryComplete();
        }
        catch (IOException e)
        {
            _received.Writer.TryComplete(e);
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _waker.Wake();
        _reader.Join(TimeSpan.FromSeconds(2));
        _received.Writer.TryComplete();
        _ = PosixTty.Close(_fd);
        _waker.Dispose();
    }
}
