using Microsoft.Extensions.Logging;
using SmpRobot.Controller.Motion;

namespace SmpRobot.Controller.Gantry;

/// <summary>
/// Owns the link to the firmware: opens it, knows whether the machine is homed, polls status, and
/// reports faults. Knows nothing about sessions; callers decide when homing or jogging is allowed.
/// </summary>
public sealed class GantryConnection : IAsyncDisposable
{
    private readonly Func<IGantryTransport> _transportFactory;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly SemaphoreSlim _connectLock = new(1, 1);
    private GrblClient? _client;
    private volatile bool _homed;
    private volatile string _lastAlarm = "";

    /// <param name="transportFactory">Makes a fresh transport for each (re)connect.</param>
    /// <param name="description">What the link is, e.g. "sim" or "serial:/dev/ttyUSB0@115200".</param>
    /// <param name="timeScale">Simulated seconds per wall second (1 on hardware).</param>
    public GantryConnection(Func<IGantryTransport> transportFactory, string description, MachineProfile profile, TimeProvider timeProvider, double timeScale, ILogger<GantryConnection> log)
    {
        _transportFactory = transportFactory;
        Description = description;
        Profile = profile;
        _time = timeProvider;
        TimeScale = timeScale;
        _log = log;
    }

    public string Description { get; }
    public MachineProfile Profile { get; }
    /// <summary>Simulated seconds per wall second; 1 on real hardware.</summary>
    public double TimeScale { get; }

    /// <summary>The live client, or null before the first connect.</summary>
    public GrblClient? Client => _client;

    public bool IsConnected => _client?.IsConnected == true;

    /// <summary>True after a successful homing cycle, until a reset, a position-losing alarm or a reconnect.</summary>
    public bool IsHomed => _homed && IsConnected;

    /// <summary>Last alarm or link fault, human readable; empty when none since connect.</summary>
    public string LastAlarm => _lastAlarm;

    /// <summary>Raised for every firmware fault (alarm, unexpected reset, link loss, protocol).</summary>
    public event EventHandler<GantryFaultException>? Faulted;

    /// <summary>Connects (or reconnects): a new transport, wait for the banner, start status polling.</summary>
    public async Task ConnectAsync(CancellationToken cancellationToken)
    {
        await _connectLock.WaitAsync(cancellationToken);
        try
        {
            if (_client is { } old)
            {
                old.Faulted -= OnFaulted;
                await old.DisposeAsync();
            }
            _homed = false;
            _lastAlarm = "";
            var client = new GrblClient(_transportFactory(), _time, new GrblClientOptions { RxBufferBytes = Profile.RxBufferBytes });
            client.Faulted += OnFaulted;
            _client = client;
            var banner = await client.ConnectAsync(cancellationToken);
            _log.LogInformation("Connected to {Gantry}: {Banner}", Description, banner);
            client.StartStatusPolling(TimeSpan.FromSeconds(1.0 / Profile.StatusPollHz));
        }
        finally
        {
            _connectLock.Release();
        }
    }

    /// <summary>The connected client, or a <see cref="GantryFaultException"/> saying it is not connected.</summary>
    public GrblClient RequireClient() =>
        _client is { IsConnected: true } c ? c : throw new GantryFaultException(GantryFaultKind.LinkLost, 0, $"gantry {Description} is not connected");

    /// <summary>Runs the homing cycle ($H; its ok comes when homing is done).</summary>
    public async Task HomeAsync(CancellationToken cancellationToken)
    {
        var client = RequireClient();
        _homed = false;
        // grbl does not answer status queries during the homing cycle: polling would read that as a dead link.
        await client.StopStatusPollingAsync();
        LineAck ack;
        try
        {
            ack = await client.ExecuteAsync("$H", cancellationToken);
        }
        finally
        {
            client.StartStatusPolling(TimeSpan.FromSeconds(1.0 / Profile.StatusPollHz));
        }
        if (!ack.Ok)
        {
            throw new GantryFaultException(GantryFaultKind.Protocol, ack.ErrorCode, $"homing failed: error:{ack.ErrorCode} {ack.ErrorText}");
        }
        _homed = true;
        _lastAlarm = "";
    }

    /// <summary>Marks the machine as needing homing (e.g. after a reset that lost position).</summary>
    public void InvalidateHoming() => _homed = false;

    private void OnFaulted(object? sender, GantryFaultException fault)
    {
        _lastAlarm = fault.Kind == GantryFaultKind.Alarm ? $"ALARM:{fault.Code} {fault.Message}" : fault.Message;
        if (fault.Kind != GantryFaultKind.Alarm || GrblProtocol.AlarmLosesPosition(fault.Code))
        {
            _homed = false;
        }
        _log.LogWarning("Gantry fault ({Kind}): {Message}", fault.Kind, fault.Message);
        Faulted?.Invoke(this, fault);
    }

    public async ValueTask DisposeAsync()
    {
        if (_client is { } c)
        {
            c.Faulted -= OnFaulted;
            await c.DisposeAsync();
        }
        _connectLock.Dispose();
    }
}
