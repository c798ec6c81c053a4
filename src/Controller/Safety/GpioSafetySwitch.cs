using System.Device.Gpio;
using System.Device.Gpio.Drivers;
using Iot.Device.Button;
using Microsoft.Extensions.Logging;

namespace SmpRobot.Controller.Safety;

/// <summary>
/// A switch the machine may only work through while it is engaged: the operator's foot pedal (held)
/// or the patient's hand switch (not pressed).
/// </summary>
public interface ISafetySwitch
{
    /// <summary>"foot pedal", "patient's hand switch".</summary>
    string Name { get; }

    /// <summary>True while the machine may work: the pedal is held, the patient's switch is not pressed.</summary>
    bool IsEngaged { get; }

    /// <summary>Raised at once when the switch disengages (on the thread that saw it). Engaging again raises nothing: resuming is the operator's decision at the console.</summary>
    event EventHandler? Disengaged;
}

/// <summary>
/// A safety switch on a GPIO line, wired fail-safe: engaged means the contact is closed to GND and
/// the line reads low; the line is pulled up, so an open contact, a cut wire or an unplugged
/// connector reads high = disengaged (the foot pedal is normally open and closes while held; the
/// patient's hand switch is normally closed and opens while pressed). Read through
/// Iot.Device.Bindings' debounced <see cref="GpioButton"/>: disengaging acts on its first edge; bounce
/// after it is ignored for the debounce time before engaging counts again. Edges are backed by
/// polling the level (<see cref="PollInterval"/>), so a missed edge still disengages on the next
/// poll, and the state at start is read, not assumed.
/// </summary>
public sealed partial class GpioSafetySwitch : ISafetySwitch, IDisposable
{
    /// <summary>Default period of the level poll that backs the edges.</summary>
    public static readonly TimeSpan DefaultPollInterval = TimeSpan.FromMilliseconds(20);

    private readonly GpioController _controller;
    private readonly GpioButton _button;
    private readonly int _pin;
    private readonly bool _engagedLow;
    private readonly ILogger _log;
    private readonly Lock _gate = new();
    private readonly ITimer _poll;
    private bool _engaged;
    private bool _disposed;

    /// <param name="name">What it is, for messages.</param>
    /// <param name="chip">GPIO chip number (for messages).</param>
    /// <param name="pin">Line offset.</param>
    /// <param name="engagedLow">True (the fail-safe wiring above): low = engaged, pull-up; false: the mirror image (contact to 3.3 V, pull-down).</param>
    /// <param name="debounce">Bounce after a disengage ignored this long.</param>
    /// <param name="driver">The chip (owned).</param>
    public GpioSafetySwitch(string name, int chip, int pin, bool engagedLow, TimeSpan debounce, GpioDriver driver, TimeProvider timeProvider, ILogger<GpioSafetySwitch> log, TimeSpan? pollInterval = null)
    {
        ArgumentNullException.ThrowIfNull(timeProvider);
        Name = name;
        _pin = pin;
        _engagedLow = engagedLow;
        _log = log;
        PollInterval = pollInterval ?? DefaultPollInterval;
        _controller = new GpioController(driver);
        // GpioButton's "pressed" is our "engaged"; its pull-up mode means "pressed pulls low".
        _button = new GpioButton(_pin, TimeSpan.FromTicks(Math.Max(debounce.Ticks * 3, TimeSpan.FromSeconds(1.5).Ticks)), TimeSpan.FromSeconds(2),
            isPullUp: _engagedLow, hasExternalResistor: !_controller.IsPinModeSupported(_pin, _engagedLow ? PinMode.InputPullUp : PinMode.InputPullDown),
            gpio: _controller, shouldDispose: false, debounceTime: debounce);
        _button.ButtonDown += (_, _) => SetEngaged(true, "engaged");
        _button.ButtonUp += (_, _) => SetEngaged(false, "disengaged");
        lock (_gate) _engaged = ReadEngaged();
        _button.IsPressed = _engaged;
        Log.Opened(_log, name, chip, _pin, _engaged ? "engaged" : "DISENGAGED");
        _poll = timeProvider.CreateTimer(_ => Poll(), null, PollInterval, PollInterval);
    }

    /// <summary>A switch on the host's GPIO chip through libgpiod.</summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA2000", Justification = "the GpioSafetySwitch owns the driver (its GpioController disposes it)")]
    public static GpioSafetySwitch Open(string name, int chip, int pin, bool engagedLow, TimeSpan debounce, TimeProvider timeProvider, ILogger<GpioSafetySwitch> log) =>
        new(name, chip, pin, engagedLow, debounce, new LibGpiodDriver(chip), timeProvider, log);

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>Period of the level poll that backs the edges.</summary>
    public TimeSpan PollInterval { get; }

    /// <inheritdoc />
    public bool IsEngaged { get { lock (_gate) return _engaged; } }

    /// <inheritdoc />
    public event EventHandler? Disengaged;

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
        }
        _poll.Dispose();
        _button.Dispose();
        _controller.Dispose();
    }

    private bool ReadEngaged()
    {
        try
        {
            return (_controller.Read(_pin) == PinValue.Low) == _engagedLow;
        }
        catch (Exception e) when (e is InvalidOperationException or IOException)
        {
            // A switch that cannot be read cannot vouch for anything.
            Log.Unreadable(_log, Name, _pin, e.Message);
            return false;
        }
    }

    private void Poll()
    {
        lock (_gate)
        {
            if (_disposed) return;
            // The poll only catches a disengage the edges missed; engaging comes from the debounced button.
            if (ReadEngaged() || !_engaged) return;
        }
        _button.IsPressed = false;
        SetEngaged(false, "disengaged (seen by polling)");
    }

    private void SetEngaged(bool engaged, string how)
    {
        lock (_gate)
        {
            if (_disposed || _engaged == engaged) return;
            _engaged = engaged;
        }
        Log.Changed(_log, Name, how);
        if (!engaged) Disengaged?.Invoke(this, EventArgs.Empty);
    }

    /// <summary>Log messages (source-generated).</summary>
    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Information, Message = "{Name} on GPIO {Chip}/{Pin}: {State}")]
        public static partial void Opened(ILogger log, string name, int chip, int pin, string state);

        [LoggerMessage(Level = LogLevel.Error, Message = "Cannot read the {Name} on GPIO {Pin}: {Message}")]
        public static partial void Unreadable(ILogger log, string name, int pin, string message);

        [LoggerMessage(Level = LogLevel.Information, Message = "{Name} {How}")]
        public static partial void Changed(ILogger log, string name, string how);
    }
}

/// <summary>The safety switches of the profile's gpio section; null where there is none. Disposing releases their pins.</summary>
public sealed record SafetySwitches(ISafetySwitch? Pedal, ISafetySwitch? PatientSwitch) : IDisposable
{
    public void Dispose()
    {
        (Pedal as IDisposable)?.Dispose();
        (PatientSwitch as IDisposable)?.Dispose();
    }
}
