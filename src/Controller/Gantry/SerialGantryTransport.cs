using System.Globalization;
using System.IO.Ports;

namespace SmpRobot.Controller.Gantry;

/// <summary>
/// <see cref="IGantryTransport"/> over a serial port: 8N1, no handshake, DTR asserted (opening
/// resets an Arduino-based board, as <see cref="GrblClient.ConnectAsync"/> expects), no read timeout
/// (the client detects a silent link by its status polling). Every failure surfaces as an
/// <see cref="IOException"/>, which the client treats as a lost link.
/// </summary>
/// <remarks>
/// A Unix98 pseudo-terminal (/dev/pts/N, e.g. the simulator's <c>smp-controller simulate --pty</c>)
/// has no modem-control lines: System.IO.Ports fails to open it with DTR asserted (ENOTTY), so DTR
/// is left alone there (the simulator resets the board on every open instead, as DTR would).
/// </remarks>
public sealed class SerialGantryTransport : IGantryTransport
{
    /// <summary>grbl's default baud rate.</summary>
    public const int DefaultBaud = 115200;

    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly CancellationTokenSource _closed = new();
    private SerialPort? _port;
    private SerialPortLock? _portLock;
    private Stream? _portStream;
    private volatile bool _disposed;

    /// <param name="portPath">Device path, e.g. /dev/ttyUSB0 or a symlink to a pty.</param>
    /// <param name="baud">Baud rate; default 115200.</param>
    public SerialGantryTransport(string portPath, int baud = DefaultBaud)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(portPath);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(baud);
        PortPath = portPath;
        Baud = baud;
    }

    /// <summary>The device path as given.</summary>
    public string PortPath { get; }

    /// <summary>The baud rate.</summary>
    public int Baud { get; }

    /// <summary>"serial:PATH@BAUD".</summary>
    public string Description => $"serial:{PortPath}@{Baud.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>
    /// Opens the port (once), exclusively: first the port's lock (<see cref="SerialPortLock"/>; a port
    /// held by another controller is refused with <see cref="GantryInUseException"/> before it is
    /// touched), then the device, then the terminal's exclusive mode (TIOCEXCL: other programs'
    /// opens fail; not on a pseudo-terminal, whose flag would outlive a killed controller while the
    /// simulator keeps it open). Throws <see cref="IOException"/> when it cannot be opened.
    /// </summary>
    public Task OpenAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_port is not null) throw new InvalidOperationException($"{Description} is already open");
        _portLock = SerialPortLock.Acquire(PortPath);
        try
        {
            var port = new SerialPort(PortPath, Baud, Parity.None, 8, StopBits.One)
            {
                Handshake = Handshake.None,
                DtrEnable = !PosixTty.IsPseudoTerminal(PortPath),
                ReadTimeout = SerialPort.InfiniteTimeout,
                WriteTimeout = SerialPort.InfiniteTimeout,
            };
            port.Open();
            _port = port;
            _portStream = port.BaseStream;
            if (!PosixTty.IsPseudoTerminal(PortPath)) SetExclusive();
            return Task.CompletedTask;
        }
        catch (Exception e) when (e is UnauthorizedAccessException or ArgumentException or InvalidOperationException or IOException)
        {
            _portLock.Dispose();
            _portLock = null;
            throw e as IOException ?? new IOException($"cannot open {Description}: {e.Message}", e);
        }
    }

    /// <summary>Sets the terminal's exclusive flag through a second descriptor (the flag belongs to the terminal, and an extra open of an open tty does not touch DTR). Best effort: the lock file is what refuses a second controller.</summary>
    private bool SetExclusive()
    {
        var fd = PosixTty.Open(PortPath, PosixTty.ORdWr | PosixTty.ONoCtty | PosixTty.ONonBlock | PosixTty.OCloExec);
        if (fd < 0) return false;
        try
        {
            return PosixTty.Ioctl(fd, PosixTty.TiocExcl) == 0;
        }
        finally
        {
            PosixTty.Close(fd);
        }
    }

    /// <summary>Writes all bytes; one call's bytes stay contiguous on the wire.</summary>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (_disposed) throw new IOException($"{Description} is closed");
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_portStream is { } stream) await stream.WriteAsync(data, cancellationToken).ConfigureAwait(false);
            else throw new IOException($"{Description} is not open");
        }
        catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException or UnauthorizedAccessException or TimeoutException)
        {
            throw new IOException($"write to {Description} failed: {e.Message}", e);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Reads at least one byte; 0 once this transport is disposed.</summary>
    public async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (_disposed) return 0;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _closed.Token);
        try
        {
            if (_portStream is { } stream)
            {
                var n = await stream.ReadAsync(buffer, linked.Token).ConfigureAwait(false);
                return n == 0 && !_disposed ? throw new IOException($"{Description} reached end of stream") : n;
            }
            throw new InvalidOperationException("open the transport before reading");
        }
        catch (OperationCanceledException) when (_closed.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return 0;
        }
        catch (Exception e) when (e is ObjectDisposedException or UnauthorizedAccessException or TimeoutException)
        {
            if (_disposed) return 0;
            throw new IOException($"read from {Description} failed: {e.Message}", e);
        }
    }

    /// <summary>Closes the port; a pending read returns 0.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        await _closed.CancelAsync().ConfigureAwait(false);
        await _writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            // The exclusive flag goes with the last close of the device (ours), so a reconnect opens it again.
            _port?.Dispose();
        }
        catch (IOException)
        {
            // Closing a port whose device vanished may fail; it is closed either way.
        }
        finally
        {
            _portLock?.Dispose();
            _portLock = null;
            _writeLock.Release();
        }
    }
}
