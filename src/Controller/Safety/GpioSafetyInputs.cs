using System.Device.Gpio;
using System.Device.Gpio.Drivers;
using Microsoft.Extensions.Logging;
using SmpRobot.Machine;

namespace SmpRobot.Controller.Safety;

/// <summary>
/// Watches the optional GPIO e-stop and door inputs (<see cref="GpioInputs"/>) and calls the trip
/// callback (wired to <see cref="SafetySupervisor.EmergencyStopAsync"/>) when the e-stop becomes
/// active or the door opens.
/// </summary>
/// <remarks>
/// <para>Activation trips at once, on the first edge towards the active level, even if the level
/// bounced back before it could be read: a spurious stop is safe, a late one is not. An input is
/// re-armed (may trip again) only after reading inactive for <see cref="GpioInputs.DebounceMs"/>,
/// so a bouncing contact trips once per press. Releasing the e-stop or closing the door never
/// restarts anything; clearing the software latch stays a deliberate reset.</para>
/// <para>Edges are backed by polling (<see cref="PollInterval"/>), so a missed edge still trips on
/// the next poll, and an input already active at start trips at start.</para>
/// </remarks>
public sealed partial class GpioSafetyInputs : IDisposable
{
    /// <summary>Source name of trips from the e-stop input.</summary>
    public const string EstopSource = "gpio-estop";

    /// <summary>Source name of trips from the door input.</summary>
    public const string DoorSource = "gpio-door";

    /// <summary>Default polling period backing the edge events.</summary>
    public static readonly TimeSpan DefaultPollInterval = TimeSpan.FromMilliseconds(20);

    private readonly GpioInputs _config;
    private readonly GpioController _controller;
    private readonly Func<string, string, Task> _trip;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly Lock _gate = new();
    private readonly List<Input> _inputs = [];
    private readonly PinChangeEventHandler _onEdge;
    private ITimer? _poll;
    private bool _started;
    private bool _disposed;

    /// <summary>Watches the inputs of <paramref name="config"/> through <paramref name="driver"/> (which it then owns).</summary>
    /// <param name="trip">Called with (source, reason) on each activation; its failures are logged, never thrown.</param>
    /// <param name="pollInterval">Polling period; default <see cref="DefaultPollInterval"/>.</param>
    /// <exception cref="InvalidDataException"><paramref name="config"/> is not valid.</exception>
    public GpioSafetyInputs(GpioInputs config, GpioDriver driver, Func<string, string, Task> trip, TimeProvider timeProvider, ILogger<GpioSafetyInputs> log, TimeSpan? pollInterval = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(driver);
        ArgumentNullException.ThrowIfNull(trip);
        ArgumentNullException.ThrowIfNull(timeProvider);
        config.Check();
        _config = config;
        _controller = new GpioController(driver);
        _trip = trip;
        _time = timeProvider;
        _log = log;
        PollInterval = pollInterval ?? DefaultPollInterval;
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(PollInterval, TimeSpan.Zero, nameof(pollInterval));
        if (config.EstopPin is { } estop) _inputs.Add(new Input(estop, EstopSource, "e-stop input"));
        if (config.DoorPin is { } door) _inputs.Add(new Input(door, DoorSource, "door input"));
        _onEdge = OnEdge;
    }

    /// <summary>The inputs of <paramref name="config"/> on the host's GPIO chip through libgpiod.</summary>
    public static GpioSafetyInputs Open(GpioInputs config, Func<string, string, Task> trip, TimeProvider timeProvider, ILogger<GpioSafetyInputs> log)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Check();
#pragma warning disable CA2000 // the GpioSafetyInputs owns the driver (its GpioController disposes it)
        return new GpioSafetyInputs(config, new LibGpiodDriver(config.Chip), trip, timeProvider, log);
#pragma warning restore CA2000
    }

    /// <summary>Polling period backing the edge events.</summary>
    public TimeSpan PollInterval { get; }

    /// <summary>True while the e-stop input is active (or not yet re-armed after it was).</summary>
    public bool EstopActive => IsActive(EstopSource);

    /// <summary>True while the door is open (or not yet re-armed after it was).</summary>
    public bool DoorOpen => IsActive(DoorSource);

    /// <summary>Trips requested since start (each activation counts once).</summary>
    public int Trips { get { lock (_gate) return _inputs.Sum(i => i.Trips); } }

    /// <summary>
    /// Opens the pins as biased inputs, subscribes to both edges, reads the current levels (an
    /// input already active trips now) and starts polling.
    /// </summary>
    /// <exception cref="InvalidOperationException">Already started or disposed.</exception>
    public void Start()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_started) throw new InvalidOperationException("the GPIO inputs are already being watched");
            _started = true;
        }
        // Biased towards the active level: a cut wire reads as pressed / open.
        var bias = _config.ActiveLow ? PinMode.InputPullDown : PinMode.InputPullUp;
        foreach (var input in _inputs)
        {
            var mode = bias;
            if (!_controller.IsPinModeSupported(input.Pin, bias))
            {
                mode = PinMode.Input;
                Log.NoBias(_log, _config.Chip, input.Pin, input.Description, bias);
            }
            _controller.OpenPin(input.Pin, mode);
            _controller.RegisterCallbackForPinValueChangedEvent(input.Pin, PinEventTypes.Rising | PinEventTypes.Falling, _onEdge);
        }
        foreach (var input in _inputs) Evaluate(input, activeEdge: false);
        _poll = _time.CreateTimer(_ => Poll(), null, PollInterval, PollInterval);
        if (_log.IsEnabled(LogLevel.Information))
        {
#pragma warning disable CA1873 // false positive: guarded by IsEnabled just above; the analyzer does not see guards around static [LoggerMessage] methods (dotnet/sdk#50893)
            Log.Watching(_log, _config.Chip, _config.EstopPin?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-",
                _config.DoorPin?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-", _config.ActiveLow ? "low" : "high");
#pragma warning restore CA1873
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
        }
        _poll?.Dispose();
        if (_started)
        {
            foreach (var input in _inputs)
            {
                try
                {
                    _controller.UnregisterCallbackForPinValueChangedEvent(input.Pin, _onEdge);
                }
                catch (InvalidOperationException)
                {
                    // The pin was never opened (Start failed part-way).
                }
            }
        }
        _controller.Dispose();
    }

    private bool IsActive(string source)
    {
        lock (_gate) return _inputs.FirstOrDefault(i => i.Source == source)?.Active == true;
    }

    private void OnEdge(object sender, PinValueChangedEventArgs e)
    {
        var input = _inputs.FirstOrDefault(i => i.Pin == e.PinNumber);
        if (input is null) return;
        var towardsActive = _config.ActiveLow ? e.ChangeType == PinEventTypes.Falling : e.ChangeType == PinEventTypes.Rising;
        Evaluate(input, towardsActive);
    }

    private void Poll()
    {
        foreach (var input in _inputs) Evaluate(input, activeEdge: false);
    }

    /// <summary>Reads the input and updates its state; trips on the transition to active.</summary>
    private void Evaluate(Input input, bool activeEdge)
    {
        string? reason = null;
        lock (_gate)
        {
            if (_disposed) return;
            PinValue level;
            try
            {
                level = _controller.Read(input.Pin);
            }
            catch (Exception e) when (e is InvalidOperationException or IOException)
            {
                // An input that cannot be read cannot vouch for safety: treat it as active.
                Log.Unreadable(_log, input.Pin, input.Description, e.Message);
                level = _config.ActiveLow ? PinValue.Low : PinValue.High;
            }
            var active = activeEdge || (level == PinValue.Low) == _config.ActiveLow;
            var now = _time.GetTimestamp();
            if (active)
            {
                input.InactiveSince = null;
                if (!input.Active)
                {
                    input.Active = true;
                    input.Trips++;
                    reason = input.Source == EstopSource
                        ? "e-stop input active (pressed, or its circuit is open)"
                        : "door opened (or its circuit is open)";
                }
            }
            else if (input.Active)
            {
                input.InactiveSince ??= now;
                if (_time.GetElapsedTime(input.InactiveSince.Value, now).TotalMilliseconds >= _config.DebounceMs)
                {
                    input.Active = false;
                    input.InactiveSince = null;
                    Log.Rearmed(_log, input.Description);
                }
            }
        }
        if (reason is not null) _ = TripAsync(input.Source, reason);
    }

    private async Task TripAsync(string source, string reason)
    {
        Log.Tripped(_log, source, reason);
        try
        {
            await _trip(source, reason);
        }
#pragma warning disable CA1031 // runs unobserved from the poll timer and pin events: a trip's failure is logged, never thrown (as documented)
        catch (Exception e)
#pragma warning restore CA1031
        {
            Log.TripFailed(_log, e, source);
        }
    }

    private sealed class Input(int pin, string source, string description)
    {
        public int Pin { get; } = pin;
        public string Source { get; } = source;
        public string Description { get; } = description;
        public bool Active { get; set; }
        public long? InactiveSince { get; set; }
        public int Trips { get; set; }
    }

    /// <summary>Log messages (source-generated).</summary>
    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Warning, Message = "GPIO {Chip}/{Pin} ({Input}) has no {Bias}: an external resistor to the active level is required for fail-safe wiring")]
        public static partial void NoBias(ILogger log, int chip, int pin, string input, PinMode bias);

        [LoggerMessage(Level = LogLevel.Information, Message = "Watching GPIO chip {Chip}: e-stop pin {Estop}, door pin {Door}, active {Level}")]
        public static partial void Watching(ILogger log, int chip, string estop, string door, string level);

        [LoggerMessage(Level = LogLevel.Error, Message = "Cannot read GPIO {Pin} ({Input}): {Message}")]
        public static partial void Unreadable(ILogger log, int pin, string input, string message);

        [LoggerMessage(Level = LogLevel.Information, Message = "GPIO {Input} is inactive again (re-armed); nothing restarts by itself")]
        public static partial void Rearmed(ILogger log, string input);

        [LoggerMessage(Level = LogLevel.Warning, Message = "GPIO safety input {Source}: {Reason}")]
        public static partial void Tripped(ILogger log, string source, string reason);

        [LoggerMessage(Level = LogLevel.Error, Message = "The GPIO trip from {Source} failed")]
        public static partial void TripFailed(ILogger log, Exception error, string source);
    }
}
