using System.Device.Gpio;
using System.Device.Gpio.Drivers;
using Iot.Device.Button;
using Microsoft.Extensions.Logging;
using SmpRobot.Machine;

namespace SmpRobot.Controller.Safety;

/// <summary>The operator's foot pedal: a dead-man switch the machine works only while it is held.</summary>
public interface IFootPedal
{
    /// <summary>True while the pedal is held down.</summary>
    bool IsPressed { get; }

    /// <summary>Raised at once when the pedal is released (on the thread that saw it). Pressing it again raises nothing: resuming is the operator's decision at the console.</summary>
    event Action? Released;
}

/// <summary>
/// A foot pedal on a GPIO line (<see cref="GpioInputs.PedalPin"/>), read through Iot.Device.Bindings'
/// debounced <see cref="GpioButton"/>: a release acts on its first edge; bounce after a release is
/// filtered for <see cref="GpioInputs.PedalDebounceMs"/> before a press counts again. Edges are
/// backed by polling the level (<see cref="PollInterval"/>), so a missed release edge still holds the
/// machine on the next poll, and the state at start is read, not assumed.
/// </summary>
public sealed class FootPedal : IFootPedal, IDisposable
{
    /// <summary>Default period of the level poll that backs the edges.</summary>
    public static readonly TimeSpan DefaultPollInterval = TimeSpan.FromMilliseconds(20);

    private readonly GpioController _controller;
    private readonly GpioButton _button;
    private readonly int _pin;
    private readonly bool _pressedLow;
    private readonly ILogger _log;
    private readonly Lock _gate = new();
    private readonly ITimer _poll;
    private bool _pressed;
    private bool _disposed;

    /// <summary>Watches the pedal of <paramref name="config"/> through <paramref name="driver"/> (which it then owns).</summary>
    /// <exception cref="ArgumentException">The config has no pedal pin.</exception>
    public FootPedal(GpioInputs config, GpioDriver driver, TimeProvider timeProvider, ILogger<FootPedal> log, TimeSpan? pollInterval = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        _pin = config.PedalPin ?? throw new ArgumentException("the gpio section has no pedalPin", nameof(config));
        _pressedLow = config.PedalPressedLow;
        _log = log;
        PollInterval = pollInterval ?? DefaultPollInterval;
        _controller = new GpioController(driver);
        var debounce = TimeSpan.FromMilliseconds(config.PedalDebounceMs);
        // Biased towards "released"; GpioButton's pull-up mode means "pressed pulls low".
        _button = new GpioButton(_pin, TimeSpan.FromTicks(Math.Max(debounce.Ticks * 3, TimeSpan.FromSeconds(1.5).Ticks)), TimeSpan.FromSeconds(2),
            isPullUp: _pressedLow, hasExternalResistor: !_controller.IsPinModeSupported(_pin, _pressedLow ? PinMode.InputPullUp : PinMode.InputPullDown),
            gpio: _controller, shouldDispose: false, debounceTime: debounce);
        _button.ButtonDown += (_, _) => SetPressed(true, "pressed");
        _button.ButtonUp += (_, _) => SetPressed(false, "released");
        lock (_gate) _pressed = ReadPressed();
        _button.IsPressed = _pressed;
        _log.LogInformation("Foot pedal on GPIO {Chip}/{Pin}: {State}", config.Chip, _pin, _pressed ? "held" : "released");
        _poll = timeProvider.CreateTimer(_ => Poll(), null, PollInterval, PollInterval);
    }

    /// <summary>The pedal on the host's GPIO chip through libgpiod.</summary>
    public static FootPedal Open(GpioInputs config, TimeProvider timeProvider, ILogger<FootPedal> log) =>
        new(config, new LibGpiodDriver(config.Chip), timeProvider, log);

    /// <summary>Period of the level poll that backs the edges.</summary>
    public TimeSpan PollInterval { get; }

    /// <inheritdoc />
    public bool IsPressed { get { lock (_gate) return _pressed; } }

    /// <inheritdoc />
    public event Action? Released;

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

    private bool ReadPressed()
    {
        try
        {
            return (_controller.Read(_pin) == PinValue.Low) == _pressedLow;
        }
        catch (Exception e) when (e is InvalidOperationException or IOException)
        {
            // A pedal that cannot be read cannot vouch for the operator.
            _log.LogError("Cannot read the foot pedal on GPIO {Pin}: {Message}", _pin, e.Message);
            return false;
        }
    }

    private void Poll()
    {
        bool pressed;
        lock (_gate)
        {
            if (_disposed) return;
            pressed = ReadPressed();
            // The poll only catches a release the edges missed; presses come from the debounced button.
            if (pressed || !_pressed) return;
        }
        _button.IsPressed = false;
        SetPressed(false, "released (seen by polling)");
    }

    private void SetPressed(bool pressed, string how)
    {
        lock (_gate)
        {
            if (_disposed || _pressed == pressed) return;
            _pressed = pressed;
        }
        _log.LogInformation("Foot pedal {How}", how);
        if (!pressed) Released?.Invoke();
    }
}
