using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace SmpRobot.Controller.Gantry.Simulation;

/// <summary>
/// The board behind a POSIX pseudo-terminal (openpty, no socat): clients open <see cref="LinkPath"/>
/// (a symlink to the slave, e.g. /dev/pts/3) as they would open /dev/ttyUSB0. The slave is in raw
/// mode and this device keeps its own descriptor to it open, so the master never sees a hang-up
/// between clients. Every open of the slave by a client (seen with inotify, IN_OPEN) resets the
/// board, as DTR does on an Arduino-based board; bytes queued for an earlier client are discarded.
/// </summary>
/// <remarks>
/// A dedicated thread waits in poll() on the master, the inotify descriptor and a wake-up eventfd;
/// what the host wrote goes to the board through the link's baud-rate pacing. Board output is paced
/// the same way and written to the master without blocking: when no client reads, it is dropped
/// (as by a UART with no listener).
/// </remarks>
public sealed class PtyDevice : IAsyncDisposable
{
    private readonly SimulatorHost _host;
    private readonly int _master;
    private readonly int _slave;
    private readonly int _inotify;
    private readonly PosixTty.Waker _waker = new();
    private readonly Thread _reader;
    private readonly LinkPumps _pumps;
    private long _bytesFromHost;
    private long _droppedToHost;
    private volatile bool _disposed;
    private volatile bool _everOpened;

    private PtyDevice(SimulatorHost host, int master, int slave, int inotify, string linkPath, string devicePath)
    {
        _host = host;
        _master = master;
        _slave = slave;
        _inotify = inotify;
        LinkPath = linkPath;
        DevicePath = devicePath;
        _pumps = host.AttachLink(WriteToHost, "pty " + linkPath);
        _reader = new Thread(ReaderLoop) { IsBackground = true, Name = "pty device " + devicePath };
        _reader.Start();
    }

    /// <summary>The symlink clients open.</summary>
    public string LinkPath { get; }

    /// <summary>The pty slave, e.g. /dev/pts/3.</summary>
    public string DevicePath { get; }

    /// <summary>Bytes the host wrote (before pacing).</summary>
    public long BytesFromHost => Interlocked.Read(ref _bytesFromHost);

    /// <summary>Bytes delivered to the board after pacing.</summary>
    public long BytesToBoard => _pumps.ToFirmware.Delivered;

    /// <summary>Board output dropped because no client was reading.</summary>
    public long DroppedToHost => Interlocked.Read(ref _droppedToHost);

    internal static PtyDevice Create(SimulatorHost host, string linkPath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(linkPath);
        linkPath = Path.GetFullPath(linkPath);
        if (PosixTty.OpenPty(out var master, out var slave, 0, 0, 0) != 0) throw PosixTty.LastError("openpty");
        var inotify = -1;
        try
        {
            PosixTty.MakeRaw(slave);
            PosixTty.SetNonBlocking(master);
            var devicePath = PosixTty.TtyName(slave);
            inotify = PosixTty.InotifyInit1(PosixTty.ONonBlock | PosixTty.OCloExec);
            if (inotify < 0) throw PosixTty.LastError("inotify_init1");
            if (PosixTty.InotifyAddWatch(inotify, devicePath, PosixTty.InOpen) < 0) throw PosixTty.LastError("inotify_add_watch " + devicePath);
            ReplaceStaleLink(linkPath);
            File.CreateSymbolicLink(linkPath, devicePath);
            return new PtyDevice(host, master, slave, inotify, linkPath, devicePath);
        }
        catch
        {
            if (inotify >= 0) _ = PosixTty.Close(inotify);
            _ = PosixTty.Close(slave);
            _ = PosixTty.Close(master);
            throw;
        }
    }

    /// <summary>A symlink left by a crashed run is replaced; anything else at the path is an error.</summary>
    private static void ReplaceStaleLink(string linkPath)
    {
        var info = new FileInfo(linkPath);
        if (info.LinkTarget is not null)
        {
            info.Delete();
        }
        else if (info.Exists || Directory.Exists(linkPath))
        {
            throw new IOException($"{linkPath} exists and is not a symlink: refusing to replace it");
        }
    }

    private void WriteToHost(ReadOnlySpan<byte> data)
    {
        if (!_everOpened)
        {
            // Nobody has opened the line yet (e.g. the power-on banner): a UART with no listener.
            Interlocked.Add(ref _droppedToHost, data.Length);
            return;
        }
        while (!data.IsEmpty && !_disposed)
        {
            var n = PosixTty.Write(_master, data, (nuint)data.Length);
            if (n > 0)
            {
                data = data[(int)n..];
                continue;
            }
            var errno = Marshal.GetLastPInvokeError();
            if (n < 0 && errno == PosixTty.EIntr) continue;
            // EAGAIN: the slave's input queue is full because nobody reads it.
            Interlocked.Add(ref _droppedToHost, data.Length);
            return;
        }
    }

    private void ReaderLoop()
    {
        try
        {
            ReadUntilDisposed();
        }
#pragma warning disable CA1031 // last resort of the reader thread: an exception left on a thread of its own ends the whole process (the simulating controller, or the test host)
        catch (Exception e)
#pragma warning restore CA1031
        {
            // Torn down under it (its waker released after a join that timed out on a loaded machine): nothing to say.
            if (!_disposed) _host.Log.PtyReaderFailed(DevicePath, e.Message);
        }
    }

    private void ReadUntilDisposed()
    {
        var buffer = new byte[4096];
        Span<PosixTty.PollFd> fds = stackalloc PosixTty.PollFd[3];
        while (!_disposed)
        {
            fds[0] = new PosixTty.PollFd { Fd = _master, Events = PosixTty.PollIn };
            fds[1] = new PosixTty.PollFd { Fd = _inotify, Events = PosixTty.PollIn };
            fds[2] = new PosixTty.PollFd { Fd = _waker.Fd, Events = PosixTty.PollIn };
            if (PosixTty.Poll(fds, 3, -1) < 0)
            {
                if (Marshal.GetLastPInvokeError() == PosixTty.EIntr) continue;
                _host.Log.PtyPollFailed(DevicePath, PosixTty.LastError("poll").Message);
                return;
            }
            if (_disposed || fds[2].Revents != 0) return;
            if (fds[1].Revents != 0 && DrainOpenEvents(buffer) > 0)
            {
                // Board output still in the slave's input queue was meant for no one (or an earlier client).
                _host.ResetByOpen("a client of " + LinkPath, _pumps, () =>
                {
                    _ = PosixTty.TcFlush(_slave, PosixTty.TciFlush);
                    _everOpened = true;
                });
            }
            if ((fds[0].Revents & PosixTty.PollIn) != 0)
            {
                var n = PosixTty.Read(_master, buffer, (nuint)buffer.Length);
                if (n > 0)
                {
                    Interlocked.Add(ref _bytesFromHost, n);
                    _pumps.ToFirmware.Enqueue(buffer.AsSpan(0, (int)n));
                }
            }
        }
    }

    /// <summary>Reads all pending inotify events; returns how many were opens.</summary>
    private int DrainOpenEvents(byte[] buffer)
    {
        var opens = 0;
        while (true)
        {
            var n = (int)PosixTty.Read(_inotify, buffer, (nuint)buffer.Length);
            if (n <= 0) return opens;
            // struct inotify_event { int wd; uint32 mask; uint32 cookie; uint32 len; char name[len]; }
            for (var offset = 0; offset + 16 <= n; offset += 16 + BitConverter.ToInt32(buffer, offset + 12))
            {
                if ((BitConverter.ToUInt32(buffer, offset + 4) & PosixTty.InOpen) != 0) opens++;
            }
        }
    }

    /// <summary>Stops the bridge, closes the pty (a client then reads EIO) and removes the symlink.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        _waker.Wake();
        // Bounded (a loaded machine may be slow to run the reader's last turn); a reader still running keeps its
        // descriptors: closed under it, their numbers could be reused by another open and read as this link's.
        var joined = _reader.Join(TimeSpan.FromSeconds(10));
        await _host.DetachLinkAsync(_pumps).ConfigureAwait(false);
        try
        {
            if (new FileInfo(LinkPath).LinkTarget == DevicePath) File.Delete(LinkPath);
        }
        catch (IOException e)
        {
            _host.Log.LinkNotRemoved(LinkPath, e.Message);
        }
        if (!joined)
        {
            _host.Log.PtyReaderStuck(DevicePath);
            return;
        }
        _ = PosixTty.Close(_inotify);
        _ = PosixTty.Close(_slave);
        _ = PosixTty.Close(_master);
        _waker.Dispose();
    }
}
