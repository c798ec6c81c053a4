using Microsoft.Extensions.Logging;
using SmpRobot.Controller.Motion;
using SmpRobot.Machine;

namespace SmpRobot.Controller.Gantry;

/// <summary>
/// Owns the link to the firmware: opens it, knows whether the machine is homed, polls status, and
/// reports faults. Knows nothing about sessions; callers decide when homing or jogging is allowed.
/// </summary>
public sealed partial class GantryConnection : IAsyncDisposable
{
    private readonly Func<IGantryTransport> _transportFactory;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly SemaphoreSlim _connectLock = new(1, 1);
    private GrblClient? _client;
    private volatile bool _homed;
    private volatile string _lastAlarm = "";
    private volatile SettingsCheck _settings = SettingsCheck.NotYet;

    /// <param name="transportFactory">Makes a fresh transport for each (re)connect.</param>
    /// <param name="description">What the link is, e.g. "sim" or "serial:/dev/ttyUSB0@115200".</param>
    /// <param name="timeScale">Simulated seconds per wall second (1 on hardware).</param>
    public GantryConnection(Func<IGantryTransport> transportFactory, string description, MachineProfile profile, TimeProvider timeProvider, double timeScale, ILogger<GantryConnection> log)
    {
        _transportFactory = transportFactory;
        Description = description;
        Profile = profile;
        _time = timeProvider;
        Activity = new MachineActivity(timeProvider);
        TimeScale = timeScale;
        _log = log;
    }

    public string Description { get; }
    public MachineProfile Profile { get; }

    /// <summary>The one refusal text for anything that needs a homed machine (sessions, jogs, calibrations).</summary>
    public const string NotHomedRefusal = "the machine is not homed: run smp machine home first";

    /// <summary>The machine's single owner (session, calibration, check mode, jog, homing): see <see cref="MachineLease"/>.</summary>
    public MachineLease Lease { get; } = new();

    /// <summary>The operation moving the machine outside a session (homing, jog, calibration), with its progress; shown in the machine status.</summary>
    public MachineActivity Activity { get; }
    /// <summary>Simulated seconds per wall second; 1 on real hardware.</summary>
    public double TimeScale { get; }

    /// <summary>The live client, or null before the first connect.</summary>
    public GrblClient? Client => _client;

    public bool IsConnected => _client?.IsConnected == true;

    /// <summary>True after a successful homing cycle, until a reset, a position-losing alarm or a reconnect.</summary>
    public bool IsHomed => _homed && IsConnected;

    /// <summary>Last alarm or link fault, human readable; empty when none since connect.</summary>
    public string LastAlarm => _lastAlarm;

    /// <summary>How long the <c>$$</c> answer may take on connect (grbl prints ~40 short lines).</summary>
    public static readonly TimeSpan SettingsReadTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The settings the profile depends on (see <see cref="FirmwareSettings.Expected"/>).</summary>
    public IReadOnlyList<FirmwareSetting> ExpectedSettings => FirmwareSettings.Expected(Profile);

    /// <summary>True once the board's <c>$$</c> was read and compared since the last (re)connect.</summary>
    public bool SettingsChecked => _settings.Checked;

    /// <summary>
    /// Differences between the board and the profile found at the last (re)connect, informative ones
    /// included (see <see cref="SettingDifference.Informative"/>); empty when the board matches or
    /// before the check (see <see cref="SettingsChecked"/>).
    /// </summary>
    public IReadOnlyList<SettingDifference> SettingsDifferences => _settings.Differences;

    /// <summary>Why the settings could not be read at the last (re)connect; empty when they were.</summary>
    public string SettingsError => _settings.Error;

    /// <summary>
    /// Null when the board's settings were read since the last (re)connect and every required one
    /// matches the profile; otherwise the operator's message (each difference, or why the settings
    /// could not be read). A session must not start while this is non-null.
    /// </summary>
    public string? SettingsMismatch
    {
        get
        {
            var s = _settings;
            if (!s.Checked)
            {
                return s.Error.Length > 0
                    ? $"the firmware settings of {Description} could not be checked against profile {Profile.Name}: {s.Error}; reconnect to check again"
                    : $"the firmware settings of {Description} have not been checked against profile {Profile.Name} yet: connect first";
            }
            return FirmwareSettings.MismatchMessage(Description, Profile.Name, s.Differences);
        }
    }

    /// <summary>True while a program is being checked in the firmware's check mode (<c>$C</c>): nothing may be streamed for real.</summary>
    public bool IsChecking => Lease.Holder?.Use == MachineUse.Check;

    /// <summary>Raised for every firmware fault (alarm, unexpected reset, link loss, protocol).</summary>
    public event EventHandler<GantryFaultEventArgs>? Faulted;

    private long _garbledOnEarlierLinks;

    /// <summary>Status reports received damaged and dropped since the controller started (every link to the board counted).</summary>
    public long GarbledStatusReports => Interlocked.Read(ref _garbledOnEarlierLinks) + (_client?.GarbledStatusReports ?? 0);

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
                Interlocked.Add(ref _garbledOnEarlierLinks, old.GarbledStatusReports);
            }
            _homed = false;
            _lastAlarm = "";
            // A reconnect may reach another board (or one re-flashed meanwhile): check it again.
            _settings = SettingsCheck.NotYet;
            var client = new GrblClient(_transportFactory(), _time, new GrblClientOptions { RxBufferBytes = Profile.RxBufferBytes });
            client.Faulted += OnFaulted;
            _client = client;
            var banner = await client.ConnectAsync(cancellationToken);
            Log.Connected(_log, Description, banner);
            _settings = await CheckSettingsAsync(client, cancellationToken);
            client.StartStatusPolling(TimeSpan.FromSeconds(1.0 / Profile.StatusPollHz));
        }
        finally
        {
            _connectLock.Release();
        }
    }

    /// <summary>A status report from the firmware may be shared by callers for this long (status queries are not free: each answer is ~60 bytes on a 11.5 kB/s wire).</summary>
    public static readonly TimeSpan SharedStatusMaxAge = TimeSpan.FromMilliseconds(50);

    private readonly Lock _statusGate = new();
    private Task<GrblStatus>? _statusQuery;

    /// <summary>
    /// A status report at most <see cref="SharedStatusMaxAge"/> old: the last one when it is that
    /// fresh, else the answer to one query shared by every caller waiting meanwhile. However many
    /// clients ask, the firmware sees at most one <c>?</c> per interval from here.
    /// </summary>
    /// <param name="cancellationToken">Ends the wait (not the shared query).</param>
    /// <param name="receivedAfterTimestamp">
    /// When given (a TimeProvider timestamp), only a report read after it will do. The wire keeps order,
    /// so such a report was sent by the firmware after every answer read before that moment: it measures
    /// the machine after whatever those answers confirmed (an operation's last ok, say).
    /// </param>
    /// <exception cref="GantryFaultException">Not connected, or no answer (link lost).</exception>
    public async Task<GrblStatus> FreshStatusAsync(CancellationToken cancellationToken, long receivedAfterTimestamp = 0)
    {
        var client = RequireClient();
        if (client.LastStatus is { } last && last.ReceivedTimestamp > receivedAfterTimestamp && _time.GetElapsedTime(last.ReceivedTimestamp) <= SharedStatusMaxAge) return last;
        // A shared query already on its way may be answered before the moment asked for: then ask again (a query
        // begun after that moment is read after it, so the second answer almost always does; four at most).
        for (var attempt = 0; ; attempt++)
        {
            Task<GrblStatus> query;
            lock (_statusGate)
            {
                if (_statusQuery is not { IsCompleted: false } running)
                {
                    // Not the caller's token: other callers share this query.
                    running = client.QueryStatusAsync(CancellationToken.None);
                    _statusQuery = running;
                }
                query = running;
            }
            var status = await query.WaitAsync(cancellationToken);
            if (status.ReceivedTimestamp > receivedAfterTimestamp || attempt >= 3) return status;
        }
    }

    /// <summary>The connected client, or a <see cref="GantryFaultException"/> saying it is not connected.</summary>
    public GrblClient RequireClient() =>
        _client is { IsConnected: true } c ? c : throw new GantryFaultException(GantryFaultKind.LinkLost, 0, $"gantry {Description} is not connected");

    /// <summary>Runs the homing cycle ($H; its ok comes when homing is done).</summary>
    public async Task HomeAsync(CancellationToken cancellationToken)
    {
        if (IsChecking) throw new InvalidOperationException("a program is being checked in check mode; home afterwards");
        var client = RequireClient();
        using var activity = Activity.Begin("homing");
        _homed = false;
        // grbl does not answer status queries during the homing cycle: polling would read that as a dead link.
        await client.StopStatusPollingAsync();
        LineAck ack;
        try
        {
            ack = await client.ExecuteAsync(MachineLines.Home, cancellationToken);
        }
        catch (GantryFaultException e) when (e.Kind == GantryFaultKind.Alarm)
        {
            // grbl answers a failed cycle with ALARM:6..9, the $H's ok and a reset of its own: the link stays usable.
            throw new GantryFaultException(GantryFaultKind.Alarm, e.Code, $"homing failed: {e.Message}; the board reset itself and is not homed: check the limit switches and their wiring, then home again");
        }
        finally
        {
            client.StartStatusPolling(TimeSpan.FromSeconds(1.0 / Profile.StatusPollHz));
        }
        if (!ack.Ok)
        {
            throw new GantryFaultException(GantryFaultKind.Protocol, ack.ErrorCode, $"homing failed: error:{ack.ErrorCode} {ack.ErrorText}");
        }
        // The frame every target was checked in is the one grbl's rules give for the profile's settings:
        // a board homing elsewhere (another $23, $27 or build option) is not homed for this profile.
        var status = await client.QueryStatusAsync(cancellationToken);
        var home = Profile.HomePosition;
        var difference = status.MachinePosition - home;
        var tolerance = HomeToleranceMm;
        if (Math.Abs(difference.X) > tolerance || Math.Abs(difference.Y) > tolerance || Math.Abs(difference.Z) > tolerance)
        {
            _lastAlarm = $"homing ended at {status.MachinePosition}, not at the profile's home {home} (difference {difference}): check $23, $27 and homingForceSetOrigin of profile {Profile.Name}";
            throw new GantryFaultException(GantryFaultKind.Protocol, 0, "not homed: " + _lastAlarm);
        }
        _homed = true;
        _lastAlarm = "";
    }

    /// <summary>How far the position after homing may be from the profile's home position, mm (grbl prints 3 decimals; the step grid is finer than 0.01 mm).</summary>
    public const double HomeToleranceMm = 0.01;

    /// <summary>
    /// Reads the board's settings now and compares them with <paramref name="expected"/> (e.g. the
    /// settings of another profile file). Does not change <see cref="SettingsDifferences"/>.
    /// Refused while a program is being checked; grbl refuses <c>$$</c> while moving (error:8).
    /// </summary>
    /// <exception cref="GantryFaultException">Not connected, or the link failed.</exception>
    /// <exception cref="InvalidOperationException">The firmware refused <c>$$</c>, or a check is running.</exception>
    /// <exception cref="TimeoutException">No answer within <see cref="SettingsReadTimeout"/>.</exception>
    public async Task<IReadOnlyList<SettingDifference>> ReadSettingsDifferencesAsync(IReadOnlyList<FirmwareSetting> expected, CancellationToken cancellationToken)
    {
        if (IsChecking) throw new InvalidOperationException("a program is being checked in check mode; read the settings afterwards");
        var actual = await ReadSettingsWithTimeoutAsync(RequireClient(), cancellationToken);
        return FirmwareSettings.Compare(expected, actual);
    }

    /// <summary>
    /// Takes the machine's lease for check mode until the returned scope is disposed (see
    /// <see cref="IsChecking"/>): nothing else may use the machine meanwhile.
    /// </summary>
    /// <exception cref="InvalidOperationException">The machine is taken (a check, a session, a calibration, a jog or homing).</exception>
    public IDisposable BeginCheckMode() =>
        Lease.TryAcquire(MachineUse.Check, "program check in check mode", out var holder) ?? throw new InvalidOperationException("cannot check the program: " + holder!.BusyText);

    /// <summary>Marks the machine as needing homing (e.g. after a reset that lost position).</summary>
    public void InvalidateHoming() => _homed = false;

    private void OnFaulted(object? sender, GantryFaultEventArgs e)
    {
        var fault = e.Fault;
        _lastAlarm = fault.Kind == GantryFaultKind.Alarm ? $"ALARM:{fault.Code} {fault.Message}" : fault.Message;
        if (fault.Kind != GantryFaultKind.Alarm || GrblProtocol.AlarmLosesPosition(fault.Code))
        {
            _homed = false;
        }
        Log.Fault(_log, fault.Kind, fault.Message);
        Faulted?.Invoke(this, e);
        if (fault.Kind == GantryFaultKind.Alarm && sender is GrblClient { LockedByAlarm: not null } locked)
        {
            _ = Task.Run(() => ResetAfterLockingAlarmAsync(locked, fault.Code));
        }
    }

    /// <summary>
    /// A hard or soft limit locks grbl until it is reset; motion and the needle drive are already stopped by
    /// it. Reset it (repeated until the banner comes: SoftResetAsync), then read its settings again. Nothing
    /// is re-sent: every line in flight failed with the alarm. Homing stays lost after a hard limit.
    /// </summary>
    private async Task ResetAfterLockingAlarmAsync(GrblClient client, int code)
    {
        var alarm = "ALARM:" + code.ToString(System.Globalization.CultureInfo.InvariantCulture);
        try
        {
            await client.SoftResetAsync(CancellationToken.None);
            _settings = await CheckSettingsAsync(client, CancellationToken.None);
            _lastAlarm = $"{alarm} {GrblProtocol.AlarmText(code)}; the firmware was reset and answers again (unlock with $X or home)";
            Log.ResetAfterAlarm(_log, alarm);
        }
        catch (Exception e) when (e is GantryFaultException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
            _lastAlarm = $"{alarm}: the firmware could not be reset ({e.Message}): reconnect (smp machine connect) or power-cycle the board";
            Log.ResetAfterAlarmFailed(_log, alarm, e.Message);
        }
    }

    private async Task<SettingsCheck> CheckSettingsAsync(GrblClient client, CancellationToken cancellationToken)
    {
        try
        {
            var actual = await ReadSettingsWithTimeoutAsync(client, cancellationToken);
            var differences = FirmwareSettings.Compare(ExpectedSettings, actual);
            foreach (var d in differences)
            {
                if (d.Informative) Log.SettingInformative(_log, d);
                else Log.SettingDiffers(_log, Profile.Name, d);
            }
            return new SettingsCheck(true, differences, "");
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or GantryFaultException)
        {
            // Still connected: the operator sees why in the status and can reconnect; sessions are refused.
            Log.SettingsUnreadable(_log, Description, e.Message);
            return new SettingsCheck(false, [], e.Message);
        }
    }

    private async Task<IReadOnlyDictionary<int, string>> ReadSettingsWithTimeoutAsync(GrblClient client, CancellationToken cancellationToken)
    {
        using var timeout = new CancellationTokenSource(SettingsReadTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            return await client.ReadSettingsAsync(linked.Token);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException(FormattableString.Invariant($"no answer to $$ within {SettingsReadTimeout.TotalSeconds:0} s"));
        }
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

    private sealed record SettingsCheck(bool Checked, IReadOnlyList<SettingDifference> Differences, string Error)
    {
        public static readonly SettingsCheck NotYet = new(false, [], "");
    }

    /// <summary>Log messages (source-generated).</summary>
    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Information, Message = "Connected to {Gantry}: {Banner}")]
        public static partial void Connected(ILogger log, string gantry, string banner);

        [LoggerMessage(Level = LogLevel.Warning, Message = "Gantry fault ({Kind}): {Message}")]
        public static partial void Fault(ILogger log, GantryFaultKind kind, string message);

        [LoggerMessage(Level = LogLevel.Warning, Message = "Gantry reset after {Alarm}: it answers again")]
        public static partial void ResetAfterAlarm(ILogger log, string alarm);

        [LoggerMessage(Level = LogLevel.Error, Message = "Gantry reset after {Alarm} failed: {Message}")]
        public static partial void ResetAfterAlarmFailed(ILogger log, string alarm, string message);

        [LoggerMessage(Level = LogLevel.Information, Message = "Firmware setting {Difference}")]
        public static partial void SettingInformative(ILogger log, SettingDifference difference);

        [LoggerMessage(Level = LogLevel.Warning, Message = "Firmware setting differs from profile {Profile}: {Difference}")]
        public static partial void SettingDiffers(ILogger log, string profile, SettingDifference difference);

        [LoggerMessage(Level = LogLevel.Error, Message = "Could not read the firmware settings of {Gantry}: {Message}")]
        public static partial void SettingsUnreadable(ILogger log, string gantry, string message);
    }
}
