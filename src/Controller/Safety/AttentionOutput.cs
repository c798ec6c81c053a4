using System.Device.Gpio;
using Microsoft.Extensions.Logging;

namespace SmpRobot.Controller.Safety;

/// <summary>
/// A GPIO output for a lamp or buzzer that is on while the machine needs the operator (see
/// <see cref="Sessions.SessionManager.AttentionReason"/>): a session held, faulted or stopped, or the
/// e-stop latched. Looked at every <see cref="Period"/>; off again once the reason is gone.
/// </summary>
public sealed partial class AttentionOutput : IDisposable
{
    /// <summary>How often the reason is looked at.</summary>
    public static readonly TimeSpan Period = TimeSpan.FromMilliseconds(100);

    private readonly GpioController _controller;
    private readonly int _pin;
    private readonly bool _activeHigh;
    private readonly Func<string?> _reason;
    private readonly ILogger _log;
    private readonly Lock _gate = new();
    private readonly ITimer _timer;
    private bool? _on;
    private bool _disposed;

    /// <param name="driver">The chip (owned).</param>
    /// <param name="reason">Why the operator is needed now; null when not.</param>
    public AttentionOutput(int pin, bool activeHigh, GpioDriver driver, Func<string?> reason, TimeProvider timeProvider, ILogger<AttentionOutput> log)
    {
        ArgumentNullException.ThrowIfNull(timeProvider);
        _pin = pin;
        _activeHigh = activeHigh;
        _reason = reason;
        _log = log;
        _controller = new GpioController(driver);
        _controller.OpenPin(pin, PinMode.Output);
        Update();
        _timer = timeProvider.CreateTimer(_ => Update(), null, Period, Period);
    }

    /// <summary>True while the lamp or buzzer is on.</summary>
    public bool IsOn { get { lock (_gate) return _on == true; } }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
        }
        _timer.Dispose();
        _controller.Dispose();
    }

    private void Update()
    {
        string? reason;
        try
        {
            reason = _reason();
        }
#pragma warning disable CA1031 // a timer callback: whatever the state's reading threw (a store away, a disposed part), the lamp says the controller cannot tell it
        catch (Exception e)
#pragma warning restore CA1031
        {
            reason = "the controller cannot tell its state: " + e.Message;
        }
        var on = reason is not null;
        lock (_gate)
        {
            if (_disposed || _on == on) return;
            try
            {
                _controller.Write(_pin, on == _activeHigh ? PinValue.High : PinValue.Low);
            }
            catch (Exception e) when (e is InvalidOperationException or IOException)
            {
                // The pin could not be written: not counted as switched, so the next tick tries again.
                Log.NotWritten(_log, e.Message);
                return;
            }
            _on = on;
        }
        if (on) Log.On(_log, reason);
        else Log.Off(_log);
    }

    /// <summary>Log messages (source-generated).</summary>
    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Error, Message = "Attention output: the pin could not be written ({Error}); tried again at the next tick")]
        public static partial void NotWritten(ILogger log, string error);

        [LoggerMessage(Level = LogLevel.Warning, Message = "Attention output on: {Reason}")]
        public static partial void On(ILogger log, string? reason);

        [LoggerMessage(Level = LogLevel.Information, Message = "Attention output off")]
        public static partial void Off(ILogger log);
    }
}
