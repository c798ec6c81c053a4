using System.Globalization;
using System.Net.Sockets;

namespace SmpRobot.Controller.Gantry;

/// <summary>
/// <see cref="IGantryTransport"/> over TCP (a serial-to-network bridge, or <c>smp-controller simulate --tcp</c>).
/// Nagle is off so single real-time bytes leave at once. Failures surface as <see cref="IOException"/>.
/// </summary>
public sealed class TcpGantryTransport : IGantryTransport
{
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly CancellationTokenSource _closed = new();
    private TcpClient? _client;
    private NetworkStream? _stream;
    private volatile bool _disposed;

    /// <param name="host">Host name or address.</param>
    /// <param name="port">TCP port (1–65535).</param>
    public TcpGantryTransport(string host, int port)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(host);
        ArgumentOutOfRangeException.ThrowIfLessThan(port, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        Host = host;
        Port = port;
    }

    public string Host { get; }
    public int Port { get; }

    /// <summary>"tcp:HOST:PORT".</summary>
    public string Description => $"tcp:{(Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]" : Host)}:{Port.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Connects (once). Throws <see cref="IOException"/> when the connection is refused or fails.</summary>
    public async Task OpenAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_client is not null) throw new InvalidOperationException($"{Description} is already open");
        var client = new TcpClient { NoDelay = true };
        try
        {
            await client.ConnectAsync(Host, Port, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            client.Dispose();
            throw new IOException($"cannot connect to {Description}: {e.Message}", e);
        }
        _client = client;
        _stream = client.GetStream();
    }

    /// <summary>Writes all bytes; one call's bytes stay contiguous.</summary>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (_disposed || _stream is not { } stream) throw new IOException($"{Description} is not open");
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await stream.WriteAsync(data, cancellationToken).ConfigureAwait(false);
        }
        catch (ObjectDisposedException e)
        {
            throw new IOException($"{Description} is closed", e);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Reads at least one byte; 0 once disposed; IOException when the peer closed or failed.</summary>
    public async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (_disposed) return 0;
        if (_stream is not { } stream) throw new InvalidOperationException("open the transport before reading");
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _closed.Token);
        try
        {
            var n = await stream.ReadAsync(buffer, linked.Token).ConfigureAwait(false);
            if (n == 0 && !_disposed) throw new IOException($"{Description}: the peer closed the connection");
            return n;
        }
        catch (OperationCanceledException) when (_closed.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return 0;
        }
        catch (ObjectDisposedException) when (_disposed)
        {
            return 0;
        }
    }

    /// <summary>Closes the connection; a pending read returns 0.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        await _closed.CancelAsync().ConfigureAwait(false);
        _client?.Dispose();
    }
}
