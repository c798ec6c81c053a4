using System.Device.Gpio;

namespace SmpRobot.Controller.Safety;

/// <summary>
/// A simulated GPIO chip, beside the real one (libgpiod): whoever drives it (a test, a bench) sets a
/// line's level and the edge callbacks run at once, on the caller's thread; outputs keep what was written.
/// </summary>
public sealed class SimulatedGpioDriver : GpioDriver
{
    private readonly Lock _gate = new();
    private readonly Dictionary<int, PinValue> _levels = [];
    private readonly Dictionary<int, PinMode> _modes = [];
    private readonly Dictionary<int, (PinEventTypes Types, PinChangeEventHandler Handler)> _callbacks = [];

    public SimulatedGpioDriver(int pinCount = 64) => PinCountValue = pinCount;

    public int PinCountValue { get; }

    /// <summary>When false, the driver has no pull-up/pull-down (some chips): inputs fall back to plain Input.</summary>
    public bool SupportsBias { get; init; } = true;

    public bool Disposed { get; private set; }

    protected override int PinCount => PinCountValue;

    /// <summary>The mode a pin was opened with, or null when it is not open.</summary>
    public PinMode? ModeOf(int pin)
    {
        lock (_gate) return _modes.TryGetValue(pin, out var m) ? m : null;
    }

    /// <summary>The level of a line now (what an output was driven to).</summary>
    public PinValue LevelOf(int pin)
    {
        lock (_gate) return _levels.GetValueOrDefault(pin, PinValue.Low);
    }

    /// <summary>Sets the level a line reads without raising an edge (the state before Start).</summary>
    public void Preset(int pin, PinValue level)
    {
        lock (_gate) _levels[pin] = level;
    }

    /// <summary>Drives a line to <paramref name="level"/>; raises the edge callback when it changed.</summary>
    public void SetLevel(int pin, PinValue level)
    {
        PinChangeEventHandler? handler = null;
        PinEventTypes edge;
        lock (_gate)
        {
            var old = _levels.GetValueOrDefault(pin, PinValue.Low);
            _levels[pin] = level;
            if (old == level) return;
            edge = level == PinValue.High ? PinEventTypes.Rising : PinEventTypes.Falling;
            if (_callbacks.TryGetValue(pin, out var cb) && (cb.Types & edge) != 0) handler = cb.Handler;
        }
        handler?.Invoke(this, new PinValueChangedEventArgs(edge, pin));
    }

    /// <summary>A pulse too short to be read: the edge callback runs, but the line already reads its old level again.</summary>
    public void Glitch(int pin, PinEventTypes edge)
    {
        PinChangeEventHandler? handler = null;
        lock (_gate)
        {
            if (_callbacks.TryGetValue(pin, out var cb) && (cb.Types & edge) != 0) handler = cb.Handler;
        }
        handler?.Invoke(this, new PinValueChangedEventArgs(edge, pin));
    }

    protected override void OpenPin(int pinNumber)
    {
        lock (_gate) _modes[pinNumber] = PinMode.Input;
    }

    protected override void ClosePin(int pinNumber)
    {
        lock (_gate)
        {
            _modes.Remove(pinNumber);
            _callbacks.Remove(pinNumber);
        }
    }

    protected override void SetPinMode(int pinNumber, PinMode mode)
    {
        lock (_gate) _modes[pinNumber] = mode;
    }

    protected override PinMode GetPinMode(int pinNumber)
    {
        lock (_gate) return _modes[pinNumber];
    }

    protected override bool IsPinModeSupported(int pinNumber, PinMode mode) =>
        mode is PinMode.Input or PinMode.Output || (SupportsBias && mode is PinMode.InputPullUp or PinMode.InputPullDown);

    protected override PinValue Read(int pinNumber)
    {
        lock (_gate) return _levels.GetValueOrDefault(pinNumber, PinValue.Low);
    }

    protected override void Toggle(int pinNumber) => Write(pinNumber, Read(pinNumber) == PinValue.High ? PinValue.Low : PinValue.High);

    /// <summary>An output (a lamp, a buzzer): the level is kept and reads back; writing an input is refused, as hardware would ignore it.</summary>
    protected override void Write(int pinNumber, PinValue value)
    {
        TaskCompletionSource written;
        lock (_gate)
        {
            if (!_modes.TryGetValue(pinNumber, out var mode) || mode != PinMode.Output) throw new InvalidOperationException($"pin {pinNumber} is not an output");
            _levels[pinNumber] = value;
            written = _written;
            _written = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        written.TrySetResult();
    }

    private TaskCompletionSource _written = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes at the next write to an output: wait on it (then read <see cref="LevelOf"/>) instead of polling.</summary>
    public Task NextWrite { get { lock (_gate) return _written.Task; } }

    protected override WaitForEventResult WaitForEvent(int pinNumber, PinEventTypes eventTypes, CancellationToken cancellationToken) =>
        throw new NotSupportedException("callbacks only");

    protected override void AddCallbackForPinValueChangedEvent(int pinNumber, PinEventTypes eventTypes, PinChangeEventHandler callback)
    {
        lock (_gate) _callbacks[pinNumber] = (eventTypes, callback);
    }

    protected override void RemoveCallbackForPinValueChangedEvent(int pinNumber, PinChangeEventHandler callback)
    {
        lock (_gate) _callbacks.Remove(pinNumber);
    }

    protected override void Dispose(bool disposing)
    {
        Disposed = true;
        base.Dispose(disposing);
    }
}
