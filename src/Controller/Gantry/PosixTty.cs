using System.Runtime.InteropServices;

namespace SmpRobot.Controller.Gantry;

/// <summary>
/// The few POSIX terminal calls the simulated serial device and the serial transport need (Linux,
/// glibc): openpty, raw mode, poll, inotify, exclusive mode (TIOCEXCL). Written by hand because
/// nothing on the package registry creates a pty or sets a terminal exclusive.
/// </summary>
internal static partial class PosixTty
{
    public const int ONonBlock = 0x800;
    public const int OCloExec = 0x80000;

    public const short PollIn = 0x1;

    public const int EIntr = 4;

    public const int TcsaNow = 0;
    public const int TciFlush = 0;

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

    public const int ORdWr = 0x2;
    public const int ONoCtty = 0x100;

    /// <summary>ioctl: further opens of the terminal fail with EBUSY (except for CAP_SYS_ADMIN).</summary>
    public const nuint TiocExcl = 0x540C;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request);

    [LibraryImport("libc", EntryPoint = "openpty", SetLastError = true)]
    public static partial int OpenPty(out int master, out int slave, nint name, nint termios, nint winsize);

    [LibraryImport("libc", EntryPoint = "ttyname_r")]
    private static partial int TtyNameR(int fd, Span<byte> buffer, nuint length);

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
    /// System.IO.Ports cannot set DTR on them (ENOTTY) and no DTR pulse reaches the device behind.
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
