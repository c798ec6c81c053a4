using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace SmpRobot.Controller.Gantry.Simulation;

/// <summary>
/// The simulated gantry as a device on a wire: a powered-on <see cref="SimulatedGantry"/> behind
/// one or more serial-like links (<see cref="PtyDevice"/>, <see cref="TcpDevice"/>), each paced at
/// the baud rate in both directions (10 bits per byte: 8N1). Opening a link (a client opening the
/// pty, a new TCP connection) hard-resets the board, as the DTR line of an Arduino-based board does.
/// Output of the board goes to every link; input from every link reaches the board.
/// </summary>
/// <remarks>The pacing runs on real time: pass a real clock (TimeProvider.System), not a fake one.</remarks>
public sealed class SimulatorHost : IAsyncDisposable
{
    private readonly Lock _gate = new();
    private readonly Lock _receiveGate = new();
    private readonly List<LinkPumps> _links = [];
    private readonly List<IAsyncDisposable> _devices = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _outputPump;
    private readonly ILogger _log;
    private int _resets;
    private bool _disposed;

    /// <summary>Powers the board on (if it is not already) and starts pumping its output to the links added later.</summary>
    /// <param name="gantry">The simulated board; this host does not dispose it.</param>
    /// <param name="baud">Baud rate of every link, bits per second (8N1: 10 bits per byte). Default 115200.</param>
    /// <param name="timeProvider">Real clock for the pacing.</param>
    /// <param name="log">Where link events are logged; none when null.</param>
    public SimulatorHost(SimulatedGantry gantry, int baud, TimeProvider timeProvider, ILogger? log = null)
    {
        ArgumentNullException.ThrowIfNull(gantry);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(baud);
        Gantry = gantry;
        Baud = baud;
        Time = timeProvider;
        _log = log ?? NullLogger.Instance;
        if (!gantry.IsPoweredOn) gantry.PowerOn();
        _outputPump = Task.Run(OutputPumpAsync);
    }

    public SimulatedGantry Gantry { get; }

    /// <summary>Bits per second of every link.</summary>
    public int Baud { get; }

    /// <summary>Wire time of one byte: 10 bits (start, 8 data, stop) at <see cref="Baud"/>.</summary>
    public TimeSpan ByteTime => TimeSpan.FromSeconds(10.0 / Baud);

    /// <summary>How many times a client opening a link reset the board.</summary>
    public int ResetsByOpen { get { lock (_gate) return _resets; } }

    internal TimeProvider Time { get; }

    internal ILogger Log => _log;

    /// <summary>
    /// Creates a pseudo-terminal for the board and a symlink to it at <paramref name="linkPath"/>
    /// (removed again when the host is disposed). A client opens the link like a serial port.
    /// </summary>
    public PtyDevice AddPty(string linkPath)
    {
        lock (_gate) ObjectDisposedException.ThrowIf(_disposed, this);
        var device = PtyDevice.Create(this, linkPath);
        lock (_gate) _devices.Add(device);
        return device;
    }

    /// <summary>Listens on 127.0.0.1:<paramref name="port"/> (0: any free port) for one client at a time.</summary>
    public TcpDevice AddTcp(int port)
    {
        lock (_gate) ObjectDisposedException.ThrowIf(_disposed, this);
        var device = TcpDevice.Create(this, port);
        lock (_gate) _devices.Add(device);
        return device;
    }

    internal LinkPumps AttachLink(Action<ReadOnlySpan<byte>> writeToHost, string name)
    {
#pragma warning disable CA2000 // the LinkPumps own both pumps (DetachLinkAsync disposes them); a PacedPump.s constructor does not throw, so the first cannot leak while the second is made
        var pumps = new LinkPumps(
            new PacedPump(Baud, Time, writeToHost, e => _log.WriteToHostFailed(name, e.Message)),
            new PacedPump(Baud, Time, DeliverToFirmware, e => _log.BoardRefusedInput(name, e.Message)));
#pragma warning restore CA2000
        lock (_gate) _links.Add(pumps);
        return pumps;
    }

    internal async ValueTask DetachLinkAsync(LinkPumps pumps)
    {
        lock (_gate) _links.Remove(pumps);
        await pumps.ToHost.DisposeAsync().ConfigureAwait(false);
        await pumps.ToFirmware.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// A client opened a link: the board resets (DTR), and nothing queued on any wire survives.
    /// <paramref name="flushOpenedWire"/> (discarding what the opened link's driver still buffers)
    /// runs while that link's output is held, so no stale byte slips in between.
    /// </summary>
    internal void ResetByOpen(string who, LinkPumps opened, Action? flushOpenedWire = null)
    {
        lock (_gate)
        {
            if (_disposed) return;
            foreach (var link in _links)
            {
                link.ToHost.Clear(link == opened ? flushOpenedWire : null);
                link.ToFirmware.Clear();
            }
            Gantry.HardReset();
            _resets++;
        }
        _log.OpenedLink(who);
    }

    private void DeliverToFirmware(ReadOnlySpan<byte> data)
    {
        // Two links may deliver at once; each chunk reaches the board in one piece.
        lock (_receiveGate) Gantry.Receive(data);
    }

    private async Task OutputPumpAsync()
    {
        var buffer = new byte[1024];
        while (true)
        {
            int n;
            try
            {
                n = await Gantry.ReadOutputAsync(buffer, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            if (n == 0) return;
            lock (_gate)
            {
                foreach (var link in _links) link.ToHost.Enqueue(buffer.AsSpan(0, n));
            }
        }
    }

    /// <summary>Closes every link (removing the pty symlink) and stops pumping; the board itself is left to its owner.</summary>
    public async ValueTask DisposeAsync()
    {
        IAsyncDisposable[] devices;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            devices = [.. _devices];
        }
        foreach (var d in devices) await d.DisposeAsync().ConfigureAwait(false);
        await _stop.CancelAsync().ConfigureAwait(false);
        await _outputPump.ConfigureAwait(false);
    }
}

/// <summary>The two paced directions of one link.</summary>
internal sealed record LinkPumps(PacedPump ToHost, PacedPump ToFirmware);

/// <summary>
/// One direction of a serial wire: bytes handed in are delivered to <c>sink</c> no earlier than a
/// UART would have finished shifting them out (10 bits per byte at the baud rate), back to back.
/// Delivery is scheduled by timestamp: each wake-up delivers every byte whose time has come, so
/// timer granularity makes bytes a little late in small chunks but never early, and never slows
/// the average rate.
/// </summary>
internal sealed class PacedPump : IAsyncDisposable
{
    private readonly Lock _gate = new();
    private readonly Queue<byte> _queue = new();
    private readonly double _byteTicks;
    private readonly TimeProvider _time;
    private readonly Action<ReadOnlySpan<byte>> _sink;
    private readonly Action<Exception> _onSinkError;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private TaskCompletionSource _signal = NewSignal();
    private double _headDue;   // timestamp at which the first queued byte has fully arrived
    private double _wireFree;  // timestamp at which the last byte handed in has fully arrived
    private long _delivered;

    public PacedPump(int baud, TimeProvider time, Action<ReadOnlySpan<byte>> sink, Action<Exception> onSinkError)
    {
        _byteTicks = 10.0 / baud * time.TimestampFrequency;
        _time = time;
        _sink = sink;
        _onSinkError = onSinkError;
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>Bytes delivered to the sink so far.</summary>
    public long Delivered { get { lock (_gate) return _delivered; } }

    /// <summary>Queues bytes behind those already on the wire.</summary>
    public void Enqueue(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return;
        lock (_gate)
        {
            double now = _time.GetTimestamp();
            if (_queue.Count == 0) _headDue = Math.Max(now, _wireFree) + _byteTicks;
            foreach (var b in data) _queue.Enqueue(b);
            _wireFree = _headDue + ((_queue.Count - 1) * _byteTicks);
            _signal.TrySetResult();
        }
    }

    /// <summary>Drops everything not yet delivered (a reset: bytes on the wire are lost), then runs <paramref name="whileHeld"/> before any further delivery.</summary>
    public void Clear(Action? whileHeld = null)
    {
        lock (_gate)
        {
            _queue.Clear();
            _wireFree = Math.Min(_wireFree, _time.GetTimestamp());
            whileHeld?.Invoke();
        }
    }

    private async Task LoopAsync()
    {
        var buffer = new byte[512];
        var token = _stop.Token;
        while (!token.IsCancellationRequested)
        {
            var n = 0;
            Task? idle = null;
            var wait = TimeSpan.Zero;
            lock (_gate)
            {
                double now = _time.GetTimestamp();
                if (_queue.Count > 0 && now >= _headDue)
                {
                    n = (int)Math.Min(Math.Min(_queue.Count, buffer.Length), Math.Floor((now - _headDue) / _byteTicks) + 1);
                    for (var i = 0; i < n; i++) buffer[i] = _queue.Dequeue();
                    _headDue += n * _byteTicks;
                    // Delivered under the lock: a Clear (a reset) never lands between dequeuing and delivering.
                    try
                    {
                        _sink(buffer.AsSpan(0, n));
                    }
                    catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException or System.Net.Sockets.SocketException)
                    {
                        _onSinkError(e);
                    }
                    _delivered += n;
                }
                else if (_queue.Count > 0)
                {
                    wait = TimeSpan.FromSeconds((_headDue - now) / _time.TimestampFrequency);
                }
                else
                {
                    if (_signal.Task.IsCompleted) _signal = NewSignal();
                    idle = _signal.Task;
                }
            }
            if (n > 0) continue;
            try
            {
                if (idle is not null)
                {
                    await idle.WaitAsync(token).ConfigureAwait(false);
                }
                else
                {
                    await Task.Delay(wait, _time, token).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
    }
}

/// <summary>A spindle (needle drive) switch in a <see cref="SimulationRecord"/>.</summary>
public sealed record SimSpindleSwitch(double SimSeconds, bool On);

/// <summary>
/// What physically happened in a simulator run, as one JSON document (System.Text.Json, camelCase,
/// enums as names): <c>smp-controller simulate --record FILE</c> writes it on exit so end-to-end
/// tests can check the motions of a separate process.
/// </summary>
public sealed record SimulationRecord(
    double TimeScale,
    double SimulatedSeconds,
    int DroppedBytes,
    IReadOnlyList<SimMotion> Motions,
    IReadOnlyList<SimRealtimeByte> Realtime,
    IReadOnlyList<SimSpindleSwitch> Spindle)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>A snapshot of the simulator's records now.</summary>
    public static SimulationRecord From(SimulatedGantry gantry)
    {
        ArgumentNullException.ThrowIfNull(gantry);
        return new SimulationRecord(
            gantry.TimeScale,
            gantry.SimulatedSeconds,
            gantry.DroppedBytes,
            gantry.MotionRecord,
            gantry.RealtimeLog,
            [.. gantry.SpindleLog.Select(s => new SimSpindleSwitch(s.SimSeconds, s.On))]);
    }

    /// <summary>Writes the JSON document (to a temporary file first, then renamed, so a reader never sees half of it).</summary>
    public void Write(string path)
    {
        var temp = path + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(this, Json));
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Reads a document written by <see cref="Write"/>.</summary>
    public static SimulationRecord Read(string path) =>
        JsonSerializer.Deserialize<SimulationRecord>(File.ReadAllText(path), Json) ?? throw new InvalidDataException($"{path} holds no simulation record");
}

/// <summary>Options of <c>smp-controller simulate</c>.</summary>
public sealed record SimulatorRunOptions
{
    /// <summary>Where the pty symlink goes.</summary>
    public required string PtyPath { get; init; }
    /// <summary>Also listen on this loopback TCP port; null: no TCP.</summary>
    public int? TcpPort { get; init; }
    /// <summary>Machine profile of the simulated gantry.</summary>
    public required string ProfilePath { get; init; }
    /// <summary>Simulated seconds per wall second. Default 1.</summary>
    public double TimeScale { get; init; } = 1;
    /// <summary>Baud rate of the links. Default 115200.</summary>
    public int Baud { get; init; } = SerialGantryTransport.DefaultBaud;
    /// <summary>Fault-injection plan text (see FaultPlan); null: none.</summary>
    public string? Faults { get; init; }
    /// <summary>Write a <see cref="SimulationRecord"/> here on exit; null: none.</summary>
    public string? RecordPath { get; init; }
}

/// <summary><c>smp-controller simulate</c>: runs until cancelled (SIGTERM, Ctrl+C), then writes the record.</summary>
public static class SimulatorCommand
{
    /// <summary>Parses a --faults value; an ArgumentException says what is wrong and names the known faults.</summary>
    public static FaultPlan ParseFaultSpec(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (string.IsNullOrWhiteSpace(spec)) throw new ArgumentException("--faults needs at least one fault, e.g. --faults drop=0.001,seed=7");
        try
        {
            return FaultPlan.Parse(spec);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException("--faults: " + e.Message, e);
        }
    }

    /// <summary>Runs the device until <paramref name="cancellationToken"/> fires; returns the exit code.</summary>
    public static async Task<int> RunAsync(SimulatorRunOptions options, TextWriter stdout, ILoggerFactory logs, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(logs);
        if (!(options.TimeScale > 0) || !double.IsFinite(options.TimeScale)) throw new ArgumentException($"time scale must be a positive number, not {options.TimeScale}");
        if (options.Baud <= 0) throw new ArgumentException($"baud must be a positive number, not {options.Baud}");
        if (options.TcpPort is < 0 or > 65535) throw new ArgumentException($"--tcp port must be 0–65535, not {options.TcpPort}");
        var log = logs.CreateLogger("simulate");
        var profile = SmpRobot.Machine.MachineProfile.Load(options.ProfilePath);
        var gantryOptions = new SimulatedGantryOptions { TimeScale = options.TimeScale };
        if (options.Faults is { } faults)
        {
            gantryOptions = gantryOptions with { Faults = ParseFaultSpec(faults) };
            log.FaultInjectionOn(faults);
        }
        var gantry = new SimulatedGantry(profile, TimeProvider.System, gantryOptions);
        try
        {
            await using (var host = new SimulatorHost(gantry, options.Baud, TimeProvider.System, log))
            {
                var pty = host.AddPty(options.PtyPath);
                var ready = $"simulating on {pty.LinkPath} ({pty.DevicePath}) at {options.Baud.ToString(CultureInfo.InvariantCulture)} baud";
                if (options.TcpPort is { } port)
                {
                    var tcp = host.AddTcp(port);
                    ready += $", tcp:127.0.0.1:{tcp.Port.ToString(CultureInfo.InvariantCulture)}";
                }
                await stdout.WriteLineAsync(ready).ConfigureAwait(false);
                await stdout.FlushAsync(CancellationToken.None).ConfigureAwait(false);
                try
                {
                    await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    log.Stopping();
                }
            }
            if (options.RecordPath is { } recordPath)
            {
                SimulationRecord.From(gantry).Write(recordPath);
                log.WroteRecord(recordPath);
            }
            return 0;
        }
        finally
        {
            await gantry.DisposeAsync().ConfigureAwait(false);
        }
    }
}
