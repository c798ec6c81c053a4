namespace SmpRobot.Vision;

/// <summary>
/// A clock that runs <see cref="Scale"/> times faster than another: the simulated world's clock when
/// the simulated gantry runs faster than real time. The synthetic camera renders its scene, and the
/// tracker and the aiming gates measure pose ages and head speeds, on this clock, so a head that
/// sways at 0.25 Hz in simulated time is tracked and gated as it would be at real speed. Timers
/// created on it fire after their due time in scaled time. Wall-clock dates
/// (<see cref="GetUtcNow"/>) are not scaled. Scale 1 behaves exactly like the inner clock.
/// </summary>
public sealed class ScaledTimeProvider : TimeProvider
{
    private readonly TimeProvider _inner;
    private readonly long _origin;

    /// <param name="inner">The real clock.</param>
    /// <param name="scale">Scaled seconds per inner second; finite and &gt; 0.</param>
    public ScaledTimeProvider(TimeProvider inner, double scale)
    {
        ArgumentNullException.ThrowIfNull(inner);
        if (!(scale > 0) || !double.IsFinite(scale)) throw new ArgumentOutOfRangeException(nameof(scale), scale, "time scale must be a positive number");
        _inner = inner;
        Scale = scale;
        _origin = inner.GetTimestamp();
    }

    /// <summary>Scaled seconds per inner second.</summary>
    public double Scale { get; }

    /// <summary>The clock this one scales.</summary>
    public TimeProvider Inner => _inner;

    public override long TimestampFrequency => _inner.TimestampFrequency;

    public override long GetTimestamp() => Scale == 1 ? _inner.GetTimestamp() : _origin + (long)((_inner.GetTimestamp() - _origin) * Scale);

    /// <summary>The inner timestamp at which this clock reads <paramref name="scaledTimestamp"/> (to relate records of both clocks).</summary>
    public long ToInnerTimestamp(long scaledTimestamp) => Scale == 1 ? scaledTimestamp : _origin + (long)((scaledTimestamp - _origin) / Scale);

    /// <summary>This clock's reading at inner timestamp <paramref name="innerTimestamp"/>.</summary>
    public long FromInnerTimestamp(long innerTimestamp) => Scale == 1 ? innerTimestamp : _origin + (long)((innerTimestamp - _origin) * Scale);

    public override DateTimeOffset GetUtcNow() => _inner.GetUtcNow();

    public override TimeZoneInfo LocalTimeZone => _inner.LocalTimeZone;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        new ScaledTimer(_inner.CreateTimer(callback, state, ToInner(dueTime), ToInner(period)), this);

    private TimeSpan ToInner(TimeSpan scaled) =>
        scaled == Timeout.InfiniteTimeSpan || scaled <= TimeSpan.Zero ? scaled : TimeSpan.FromTicks(Math.Max(1, (long)(scaled.Ticks / Scale)));

    private sealed class ScaledTimer(ITimer inner, ScaledTimeProvider clock) : ITimer
    {
        public bool Change(TimeSpan dueTime, TimeSpan period) => inner.Change(clock.ToInner(dueTime), clock.ToInner(period));

        public void Dispose() => inner.Dispose();

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
