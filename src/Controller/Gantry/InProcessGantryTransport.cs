using SmpRobot.Controller.Gantry.Simulation;

namespace SmpRobot.Controller.Gantry;

/// <summary>
/// <see cref="IGantryTransport"/> to a <see cref="SimulatedGantry"/> in the same process.
/// Opening powers the simulator on the first time and hard-resets it on later opens (an Arduino
/// resets when its port is opened). Disposing closes this transport only; the simulator outlives it.
/// </summary>
public sealed class InProcessGantryTransport(SimulatedGantry gantry) : IGantryTransport
{
    private readonly Lock _writeLock = new();
    private readonly CancellationTokenSource _closed = new();
    private volatile bool _open;
    private volatile bool _disposed;

    /// <summary>"sim".</summary>
    public string Description => "sim";

    /// <summary>The simulator behind this transport.</summary>
    public SimulatedGantry Gantry => gantry;

    /// <inheritdoc />
    public Task OpenAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(_disposed, this);
        lock (_writeLock)
        {
            if (!gantry.IsPoweredOn) gantry.PowerOn();
            else gantry.HardReset();
            _open = true;
        }
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (_disposed || !_open) throw new IOException("simulated link is not open");
        // One call's bytes reach the firmware contiguously.
        lock (_writeLock) gantry.Receive(data.Span);
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (_disposed) return 0;
        if (!_open) throw new InvalidOperationException("open the transport before reading");
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _closed.Token);
        try
        {
            return await gantry.ReadOutputAsync(buffer, linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_closed.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return 0; // closed while reading
        }
    }

    /// <summary>Closes this transport (a pending read returns 0); the simulator keeps running.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        _open = false;
        await _closed.CancelAsync().ConfigureAwait(false);
    }
}
