using System.Globalization;
using System.Text;
using SmpRobot.Geometry;

namespace SmpRobot.Controller.Gantry;

/// <summary>
/// grbl 1.1 protocol client over an <see cref="IGantryTransport"/>: character-counting line
/// streaming with in-order acks, real-time bytes that bypass everything, status queries and
/// polling, settings, soft reset, and fault detection (alarm, unexpected reset, protocol
/// confusion, link loss).
/// </summary>
/// <remarks>
/// <para>Fault model. Every fault fails the acks still in flight with a
/// <see cref="GantryFaultException"/> and raises <see cref="Faulted"/>.</para>
/// <list type="bullet">
/// <item><b>Alarm</b> does not block sending: the firmware itself refuses G-code while in alarm
/// (error:9), and unlocking (<c>$X</c>, <c>$H</c>) needs lines. <see cref="LastAlarmCode"/> keeps the code;
/// <see cref="GrblProtocol.AlarmLosesPosition"/> says whether to re-home.</item>
/// <item><b>Reset</b> (banner mid-stream) and <b>Protocol</b> latch: <see cref="SendLineAsync"/> throws
/// until a successful <see cref="SoftResetAsync"/> resynchronises the stream.</item>
/// <item><b>LinkLost</b> by status silence latches the same way (a soft reset answered by a banner
/// proves the link again). LinkLost by transport EOF or read failure, and <b>Closed</b>, are final.</item>
/// </list>
/// <para>Events run on the reader loop: handlers must be quick and must not block; an exception
/// thrown by a handler is swallowed so that the reader keeps running.</para>
/// <para>grbl does not answer <c>?</c> during a homing cycle: stop status polling (and do not call
/// <see cref="QueryStatusAsync"/>) while <c>$H</c> runs, or the silence is reported as LinkLost.</para>
/// </remarks>
public sealed class GrblClient : IAsyncDisposable
{
    private const int MaxLineBytes = 512;
    private static readonly TimeSpan RealtimeLockSpin = TimeSpan.FromMilliseconds(20);

    private readonly IGantryTransport _transport;
    private readonly TimeProvider _time;
    private readonly GrblClientOptions _options;
    private readonly int _rxLimitBytes;

    // Guards every mutable field below; never held across an await or while raising an event.
    private readonly Lock _gate = new();
    // Serialises line senders so the in-flight FIFO order equals the wire order.
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    // Held only while bytes are being written, so each write is contiguous on the wire.
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    // Serialises ConnectAsync and SoftResetAsync.
    private readonly SemaphoreSlim _resetLock = new(1, 1);
    private readonly SemaphoreSlim _settingsLock = new(1, 1);
    private readonly CancellationTokenSource _lifetime = new();

    private readonly Queue<PendingLine> _inFlight = new();
    // A waiter gets the next report, or null when that report arrived garbled (the query asks again).
    private readonly List<TaskCompletionSource<GrblStatus?>> _statusWaiters = [];
    // Reused under _writeLock: the line hot path does not allocate an encoding buffer.
    private readonly byte[] _lineWriteBuffer;
    private readonly byte[] _realtimeWriteBuffer = new byte[1];
    private readonly byte[] _readBuffer = new byte[256];
    private readonly byte[] _lineBuffer = new byte[MaxLineBytes];

    private int _lineLength;
    private bool _lineOverflow;
    private long _garbledStatusTotal;
    // Answers still to come for lines an alarm failed (see HandleAlarm); a reset's banner clears them.
    private int _answersOwedAfterAlarm;
    // A hard or soft limit alarm locks grbl until a reset: it answers nothing, not even '?'.
    private int? _lockingAlarm;
    private long _lockingAlarmTimestamp;
    // Banners of resets repeated while the first one's banner was on its way (see SoftResetAsync).
    private int _extraBannersTolerated;
    // A homing failure alarm: grbl resets itself right after it (see HandleBanner).
    private bool _bannerAfterHomingAlarm;
    private int _garbledStatusInARow;
    private string? _lastGarbledStatus;
    private readonly Queue<long> _garbledStatusTimes = new();
    private Vec3? _lastWorkOffset;

    private int _bytesInFlight;
    private TaskCompletionSource? _roomSignal;
    private bool _opened;
    private bool _connected;
    private bool _expectingBanner;
    private TaskCompletionSource<string>? _bannerWaiter;
    private GantryFaultException? _latchedFault;
    private bool _terminal;
    private bool _disposed;
    private Dictionary<int, string>? _settingsCollector;
    private Task? _readerTask;
    private Task? _pollTask;
    private CancellationTokenSource? _pollCts;

    private string? _banner;
    private GrblStatus? _lastStatus;
    private int? _lastAlarmCode;

    /// <summary>Creates a client; nothing happens on the wire until <see cref="ConnectAsync"/>.</summary>
    /// <param name="transport">The byte link. The client takes ownership: <see cref="DisposeAsync"/> disposes it.</param>
    /// <param name="timeProvider">Clock for timeouts, polling and status timestamps.</param>
    /// <param name="options">Buffer size and timeouts; defaults to grbl's 128-byte buffer, 5 s banner and 1 s status timeout.</param>
    public GrblClient(IGantryTransport transport, TimeProvider timeProvider, GrblClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(transport);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _transport = transport;
        _time = timeProvider;
        _options = options ?? new GrblClientOptions();
        if (_options.RxBufferBytes < 3)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "RxBufferBytes must be at least 3.");
        }

        _rxLimitBytes = _options.RxBufferBytes - 1;
        _lineWriteBuffer = new byte[_options.RxBufferBytes];
    }

    /// <summary>The last welcome banner received, or null before the first.</summary>
    public string? Banner { get { lock (_gate) { return _banner; } } }

    /// <summary>True once a banner arrived after connect (or soft reset) and until the link is lost or the client disposed.</summary>
    public bool IsConnected { get { lock (_gate) { return _connected; } } }

    /// <summary>The last status report, or null before the first.</summary>
    public GrblStatus? LastStatus { get { lock (_gate) { return _lastStatus; } } }

    /// <summary>The code of the last <c>ALARM:N</c> received, or null when none arrived. Not cleared by a reset.</summary>
    public int? LastAlarmCode { get { lock (_gate) { return _lastAlarmCode; } } }

    /// <summary>
    /// The hard or soft limit alarm (1 or 2) that locked the firmware, or null. grbl then answers nothing,
    /// not even status queries, until a soft reset (<see cref="SoftResetAsync"/>); status polling pauses and
    /// <see cref="QueryStatusAsync"/> fails at once with that alarm, so the silence is not taken for a lost link.
    /// </summary>
    public int? LockedByAlarm { get { lock (_gate) { return _lockingAlarm; } } }

    /// <summary>grbl discards a reset received within about 500 ms after it printed a hard or soft limit alarm: the first reset after one waits this long after the alarm.</summary>
    public static readonly TimeSpan CriticalAlarmResetDelay = TimeSpan.FromMilliseconds(600);

    /// <summary>After a locking alarm a reset whose banner does not come within this is sent again (until BannerTimeout).</summary>
    public static readonly TimeSpan ResetRepeatInterval = TimeSpan.FromSeconds(1);

    /// <summary>Character counting: bytes (newline included) of lines written and not yet acknowledged.</summary>
    public int BytesInFlight { get { lock (_gate) { return _bytesInFlight; } } }

    /// <summary>Lines written and not yet acknowledged.</summary>
    public int LinesInFlight { get { lock (_gate) { return _inFlight.Count; } } }

    /// <summary>Status reports received damaged (framed <c>&lt;…&gt;</c>, fields unreadable) and dropped since this client was created.</summary>
    public long GarbledStatusReports { get { lock (_gate) { return _garbledStatusTotal; } } }

    /// <summary>The last garbled status report as received (cut to 120 characters), or null when none arrived.</summary>
    public string? LastGarbledStatus { get { lock (_gate) { return _lastGarbledStatus; } } }

    /// <summary>Raised on the reader loop for a garbled status report that was dropped (not for the one that makes it a link fault).</summary>
    public event EventHandler<GrblTextEventArgs>? GarbledStatusReceived;

    /// <summary>Raised on the reader loop for every status report.</summary>
    public event EventHandler<GrblStatusEventArgs>? StatusReceived;

    /// <summary>Raised on the reader loop for bracketed feedback (<c>[MSG:…]</c>, <c>[GC:…]</c>, …), startup-line echoes (<c>&gt;…</c>) and <c>$N</c>-style lines.</summary>
    public event EventHandler<GrblTextEventArgs>? MessageReceived;

    /// <summary>Raised when an alarm, unexpected reset, protocol confusion or link loss is detected (not on dispose).</summary>
    public event EventHandler<GantryFaultEventArgs>? Faulted;

    /// <summary>
    /// Opens the transport, starts the reader loop and waits up to BannerTimeout for the welcome
    /// banner (opening may reset the board); without one, sends a soft reset and waits once more.
    /// No line is ever written before the banner. Returns the banner.
    /// </summary>
    /// <exception cref="GantryFaultException">LinkLost when no banner arrives or the link closes.</exception>
    /// <exception cref="InvalidOperationException">Already connected (or connecting).</exception>
    public async Task<string> ConnectAsync(CancellationToken ct)
    {
        await _resetLock.WaitAsync(ct);
        try
        {
            TaskCompletionSource<string> bannerWaiter;
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (_opened)
                {
                    throw new InvalidOperationException("ConnectAsync may be called once per client.");
                }

                _opened = true;
                _expectingBanner = true;
                bannerWaiter = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
                _bannerWaiter = bannerWaiter;
            }

            // The timeout starts before the port opens: an open that hangs counts against it too.
            using (var firstTimeout = new CancellationTokenSource(_options.BannerTimeout, _time))
            {
                await _transport.OpenAsync(ct);
                var token = _lifetime.Token;
                _readerTask = Task.Run(() => ReaderLoopAsync(token), CancellationToken.None);
                if (await WaitBannerAsync(bannerWaiter.Task, firstTimeout, ct) is string banner)
                {
                    return banner;
                }
            }

            // No banner: the board may not auto-reset on open (no DTR wiring), or a banner got garbled.
            using (var secondTimeout = new CancellationTokenSource(_options.BannerTimeout, _time))
            {
                await WriteRealtimeCoreAsync((byte)GrblRealtime.SoftReset, ct);
                if (await WaitBannerAsync(bannerWaiter.Task, secondTimeout, ct) is string banner)
                {
                    return banner;
                }
            }

            var fault = new GantryFaultException(GantryFaultKind.LinkLost, 0, $"no welcome banner from the firmware on {_transport.Description} within {_options.BannerTimeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s, even after a soft reset");
            lock (_gate)
            {
                _expectingBanner = false;
                _bannerWaiter = null;
                _latchedFault ??= fault;
            }

            throw fault;
        }
        finally
        {
            _resetLock.Release();
        }
    }

    /// <summary>
    /// Validates and writes one line (a newline is appended). Waits, without polling, until the
    /// firmware's receive buffer has room by character counting (bytes in flight + line + 1 &lt;=
    /// RxBufferBytes - 1), then writes. The returned <see cref="SentLine.Ack"/> completes in order with
    /// the line's ok / error:N, or faults with <see cref="GantryFaultException"/> (alarm, reset, link
    /// lost, closed). Once written, a line cannot be recalled: <paramref name="ct"/> only cancels the wait.
    /// </summary>
    /// <param name="line">The line, without its newline.</param>
    /// <param name="ct">Cancels the wait for buffer room only.</param>
    /// <param name="mayWrite">
    /// Asked at the last moment before the bytes are written, under the write lock (so no real-time
    /// byte can be written between the answer and the line); false refuses the line with
    /// <see cref="LineWriteRefusedException"/>. Must be quick and must not call this client.
    /// </param>
    /// <exception cref="ArgumentException">Not printable ASCII, contains a real-time character, or too long for the buffer.</exception>
    /// <exception cref="GantryFaultException">Not connected, a soft reset in progress, or a latched fault.</exception>
    /// <exception cref="LineWriteRefusedException"><paramref name="mayWrite"/> said no.</exception>
    public async ValueTask<SentLine> SendLineAsync(string line, CancellationToken ct, Func<bool>? mayWrite = null)
    {
        ValidateLine(line);
        int byteCount = line.Length + 1;
        if (byteCount > _rxLimitBytes)
        {
            // It could never fit: waiting for room would wait forever.
            throw new ArgumentException($"A line of {line.Length.ToString(CultureInfo.InvariantCulture)} characters plus newline exceeds the {_rxLimitBytes.ToString(CultureInfo.InvariantCulture)} usable bytes of the firmware's receive buffer.", nameof(line));
        }

        await _sendLock.WaitAsync(ct);
        try
        {
            // Wait for room without holding the write lock, so real-time bytes can pass.
            while (true)
            {
                Task roomTask;
                lock (_gate)
                {
                    ThrowIfCannotSend();
                    if (_bytesInFlight + byteCount <= _rxLimitBytes)
                    {
                        break;
                    }

                    _roomSignal ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    roomTask = _roomSignal.Task;
                }

                await roomTask.WaitAsync(ct);
            }

            await _writeLock.WaitAsync(ct);
            try
            {
                PendingLine pending;
                lock (_gate)
                {
                    // Re-check: a fault may have arrived meanwhile. Room only grows while we hold _sendLock.
                    ThrowIfCannotSend();
                    if (mayWrite is not null && !mayWrite())
                    {
                        throw new LineWriteRefusedException($"'{line}' was not written: the caller's gate closed");
                    }
                    pending = new PendingLine(line, byteCount);
                    _inFlight.Enqueue(pending);
                    _bytesInFlight += byteCount;
                }

                for (int i = 0; i < line.Length; i++)
                {
                    _lineWriteBuffer[i] = (byte)line[i];
                }

                _lineWriteBuffer[line.Length] = (byte)'\n';
                // Not the caller's token: a half-written line would be glued to the next one.
                await WriteToTransportAsync(_lineWriteBuffer.AsMemory(0, byteCount));
                if (pending.Ack.Task.IsFaulted
                    && pending.Ack.Task.Exception?.InnerException is GantryFaultException { Kind: GantryFaultKind.Alarm } alarm)
                {
                    // An alarm flushed our books while this line was on its way: the firmware may
                    // still answer it, and that ack would be matched to the next line. The alarm is the
                    // cause and is named first: this fault may reach a listener before the alarm's own event.
                    EnterFault(new GantryFaultException(GantryFaultKind.Protocol, 0, $"{alarm.Message}; a line was written while it flushed the buffer, so acks can no longer be matched to lines until a soft reset"), latch: true, terminal: false);
                }

                return new SentLine(line, pending.Ack.Task);
            }
            finally
            {
                _writeLock.Release();
            }
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>Sends a line and awaits its ack (ok or error:N). Faults as <see cref="SendLineAsync"/> and its ack do.</summary>
    public async Task<LineAck> ExecuteAsync(string line, CancellationToken ct)
    {
        var sent = await SendLineAsync(line, ct);
        return await sent.Ack.WaitAsync(ct);
    }

    /// <summary>
    /// Puts one real-time byte on the wire at once: it bypasses character counting and any line
    /// waiting for buffer room (only a line write already in progress can precede it). Works in
    /// every state after the transport was opened, latched faults included, so a stop can always
    /// be attempted. A raw <see cref="GrblRealtime.SoftReset"/> sent here is seen as an unexpected
    /// reset when the banner comes back; use <see cref="SoftResetAsync"/> for a planned reset.
    /// </summary>
    /// <exception cref="GantryFaultException">LinkLost if the transport was never opened or the write fails; Closed after dispose.</exception>
    public async ValueTask SendRealtimeAsync(GrblRealtime command, CancellationToken ct = default)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                throw new GantryFaultException(GantryFaultKind.Closed, 0, "the gantry client is disposed");
            }

            if (!_opened)
            {
                throw new GantryFaultException(GantryFaultKind.LinkLost, 0, "the gantry link is not open");
            }
        }

        await WriteRealtimeCoreAsync((byte)command, ct);
    }

    /// <summary>
    /// Sends <c>?</c> and returns the next status report. No report within StatusTimeout means the
    /// link is lost: <see cref="Faulted"/> is raised and <see cref="GantryFaultException"/> (LinkLost) thrown.
    /// A soft reset while waiting fails the query with Reset (grbl forgets pending queries on reset).
    /// </summary>
    public async Task<GrblStatus> QueryStatusAsync(CancellationToken ct)
    {
        // Timer first, then '?': the timeout covers the whole round trip, re-asks after a garbled report included.
        using var timeout = new CancellationTokenSource(_options.StatusTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        while (true)
        {
            var waiter = new TaskCompletionSource<GrblStatus?>(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_gate)
            {
                ThrowIfLinkUnusable();
                if (_lockingAlarm is { } code)
                {
                    throw new GantryFaultException(GantryFaultKind.Alarm, code, $"the firmware is locked after ALARM:{code.ToString(CultureInfo.InvariantCulture)} ({GrblProtocol.AlarmText(code)}) until it is reset: it answers nothing, not even status queries");
                }

                _statusWaiters.Add(waiter);
            }

            try
            {
                await WriteRealtimeCoreAsync((byte)GrblRealtime.StatusQuery, ct);
                try
                {
                    // Null: the report was garbled, counted and dropped by the reader; ask again (too many is a fault, raised there).
                    if (await waiter.Task.WaitAsync(linked.Token) is { } status)
                    {
                        return status;
                    }
                }
                catch (OperationCanceledException) when (timeout.IsCancellationRequested && !ct.IsCancellationRequested)
                {
                    var fault = new GantryFaultException(GantryFaultKind.LinkLost, 0, $"no status report within {_options.StatusTimeout.TotalMilliseconds.ToString(CultureInfo.InvariantCulture)} ms on {_transport.Description}");
                    EnterFault(fault, latch: true, terminal: false);
                    throw fault;
                }
            }
            finally
            {
                lock (_gate)
                {
                    _statusWaiters.Remove(waiter);
                }
            }
        }
    }

    /// <summary>Sends <c>$$</c> and collects the <c>$N=value</c> lines that precede its ok (values kept as text).</summary>
    /// <exception cref="InvalidOperationException">The firmware answered error:N.</exception>
    public async Task<IReadOnlyDictionary<int, string>> ReadSettingsAsync(CancellationToken ct)
    {
        await _settingsLock.WaitAsync(ct);
        var collector = new Dictionary<int, string>();
        try
        {
            lock (_gate)
            {
                _settingsCollector = collector;
            }

            var ack = await ExecuteAsync("$$", ct);
            if (!ack.Ok)
            {
                throw new InvalidOperationException($"$$ refused: error:{ack.ErrorCode.ToString(CultureInfo.InvariantCulture)} ({ack.ErrorText})");
            }

            lock (_gate)
            {
                return new Dictionary<int, string>(collector);
            }
        }
        finally
        {
            lock (_gate)
            {
                if (ReferenceEquals(_settingsCollector, collector))
                {
                    _settingsCollector = null;
                }
            }

            _settingsLock.Release();
        }
    }

    /// <summary>
    /// Sends 0x18. Every pending ack faults (Reset, "flushed by soft reset"), counting restarts at
    /// zero, then waits up to BannerTimeout for the banner. That banner is expected: it does not
    /// raise <see cref="Faulted"/>, and it clears a latched Reset, Protocol or silence LinkLost fault.
    /// An ALARM line before it (e.g. ALARM:3, reset while moving) is recorded in
    /// <see cref="LastAlarmCode"/> and raised via <see cref="Faulted"/>. Returns the banner.
    /// </summary>
    /// <exception cref="GantryFaultException">LinkLost when no banner arrives (raised via Faulted too) or the link is gone.</exception>
    public async Task<string> SoftResetAsync(CancellationToken ct)
    {
        await _resetLock.WaitAsync(ct);
        try
        {
            var flushed = new GantryFaultException(GantryFaultKind.Reset, 0, "flushed by soft reset");
            TaskCompletionSource<string> bannerWaiter;
            PendingLine[] pending;
            TaskCompletionSource<GrblStatus?>[] statusWaiters;
            TaskCompletionSource? room;
            lock (_gate)
            {
                ThrowIfLinkUnusable();
                if (!_opened)
                {
                    throw new GantryFaultException(GantryFaultKind.LinkLost, 0, "the gantry link is not open");
                }

                pending = DrainInFlight();
                statusWaiters = DrainStatusWaiters();
                room = TakeRoomSignal();
                _expectingBanner = true;
                bannerWaiter = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
                _bannerWaiter = bannerWaiter;
            }

            FailAll(pending, statusWaiters, room, flushed);

            using var timeout = new CancellationTokenSource(_options.BannerTimeout, _time);
            long? lockedSince;
            lock (_gate)
            {
                lockedSince = _lockingAlarm is null ? null : _lockingAlarmTimestamp;
            }

            if (lockedSince is { } alarmAt)
            {
                // grbl would discard a reset this soon after the alarm; sending it anyway costs nothing, but
                // waiting out the window first makes the first one count.
                var wait = CriticalAlarmResetDelay - _time.GetElapsedTime(alarmAt);
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, _time, ct);
                }
            }

            var resetsSent = 0;
            while (true)
            {
                // After a locking alarm a reset swallowed by the firmware gets no banner: send it again until one
                // comes (timer first, then the byte).
#pragma warning disable CA2000 // false positive: the using declaration disposes it on every path
                using var repeat = lockedSince is null ? null : new CancellationTokenSource(ResetRepeatInterval, _time);
#pragma warning restore CA2000
                using var attempt = repeat is null
                    ? CancellationTokenSource.CreateLinkedTokenSource(timeout.Token)
                    : CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, repeat.Token);

                await WriteRealtimeCoreAsync((byte)GrblRealtime.SoftReset, ct);
                resetsSent++;

                if (await WaitBannerAsync(bannerWaiter.Task, attempt, ct) is string banner)
                {
                    lock (_gate)
                    {
                        _extraBannersTolerated = resetsSent - 1;
                    }

                    return banner;
                }

                if (timeout.IsCancellationRequested || lockedSince is null)
                {
                    break;
                }
            }

            var fault = new GantryFaultException(GantryFaultKind.LinkLost, 0, $"no welcome banner within {_options.BannerTimeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s after a soft reset on {_transport.Description}");
            lock (_gate)
            {
                _expectingBanner = false;
                _bannerWaiter = null;
            }

            EnterFault(fault, latch: true, terminal: false);
            throw fault;
        }
        finally
        {
            _resetLock.Release();
        }
    }

    /// <summary>
    /// Starts background status polling: a <c>?</c> every <paramref name="interval"/> (timed by the
    /// TimeProvider). A query unanswered within StatusTimeout raises a LinkLost fault, which is how an
    /// unplugged USB serial port (whose IsOpen stays true) is noticed. Polling pauses during a soft
    /// reset and while a LinkLost is latched, and resumes after a successful soft reset.
    /// </summary>
    /// <exception cref="InvalidOperationException">Polling is already running.</exception>
    public void StartStatusPolling(TimeSpan interval)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_pollTask is not null)
            {
                throw new InvalidOperationException("Status polling is already running.");
            }

            _pollCts = CancellationTokenSource.CreateLinkedTokenSource(_lifetime.Token);
            // Created here, synchronously, so the first tick is measured from this call.
            var timer = new PeriodicTimer(interval, _time);
            _pollTask = PollLoopAsync(timer, _pollCts.Token);
        }
    }

    /// <summary>Stops background status polling and waits for the loop to end. No-op when not polling.</summary>
    public async Task StopStatusPollingAsync()
    {
        Task? task;
        CancellationTokenSource? cts;
        lock (_gate)
        {
            task = _pollTask;
            cts = _pollCts;
            _pollTask = null;
            _pollCts = null;
        }

        if (task is null)
        {
            return;
        }

        await cts!.CancelAsync();
        try
        {
            await task;
        }
        catch (OperationCanceledException)
        {
            // Expected: the loop was cancelled.
        }
        finally
        {
            cts.Dispose();
        }
    }

    /// <summary>
    /// Stops polling, fails pending acks and queries with Closed (without raising
    /// <see cref="Faulted"/>), disposes the transport and waits for the reader loop to end.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
        }

        await StopStatusPollingAsync();
        EnterFault(new GantryFaultException(GantryFaultKind.Closed, 0, "the gantry client was disposed"), latch: true, terminal: true, raise: false);
        await _lifetime.CancelAsync();
        try
        {
            await _transport.DisposeAsync();
        }
#pragma warning disable CA1031 // disposing a broken link may fail in any way; the client is gone either way
        catch (Exception)
#pragma warning restore CA1031
        {
            // Disposing a broken link may fail; the client is gone either way.
        }

        if (_readerTask is not null)
        {
            try
            {
                await _readerTask;
            }
#pragma warning disable CA1031 // the reader reported its failures as faults already; dispose must finish
            catch (Exception)
#pragma warning restore CA1031
            {
                // The reader reports its own failures as faults; nothing left to report on dispose.
            }
        }

        _lifetime.Dispose();
    }

    private static void ValidateLine(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        foreach (char c in line)
        {
            if (c is < ' ' or > '~')
            {
                throw new ArgumentException("A grbl line must be printable ASCII without line breaks.", nameof(line));
            }

            if (c is '?' or '!' or '~')
            {
                throw new ArgumentException($"'{c}' is a grbl real-time command; it cannot be part of a line.", nameof(line));
            }
        }
    }

    private void ThrowIfCannotSend()
    {
        // Caller holds _gate.
        if (_disposed)
        {
            throw new GantryFaultException(GantryFaultKind.Closed, 0, "the gantry client is disposed");
        }

        if (_latchedFault is { } latched)
        {
            throw new GantryFaultException(latched.Kind, latched.Code, "the gantry link is faulted: " + latched.Message);
        }

        if (_expectingBanner)
        {
            throw new GantryFaultException(GantryFaultKind.Reset, 0, "waiting for the firmware's welcome banner (connect or soft reset in progress)");
        }

        if (!_connected)
        {
            throw new GantryFaultException(GantryFaultKind.LinkLost, 0, "the gantry is not connected");
        }
    }

    private void ThrowIfLinkUnusable()
    {
        // Caller holds _gate.
        if (_disposed)
        {
            throw new GantryFaultException(GantryFaultKind.Closed, 0, "the gantry client is disposed");
        }

        if (_terminal)
        {
            throw new GantryFaultException(GantryFaultKind.LinkLost, 0, "the gantry link is closed: " + _latchedFault?.Message);
        }

        if (!_opened)
        {
            throw new GantryFaultException(GantryFaultKind.LinkLost, 0, "the gantry link is not open");
        }
    }

    // Returns the banner, or null on timeout; throws on the caller's cancellation or a link fault.
    private static async Task<string?> WaitBannerAsync(Task<string> bannerTask, CancellationTokenSource timeout, CancellationToken ct)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        try
        {
            return await bannerTask.WaitAsync(linked.Token);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            return null;
        }
    }

    private async ValueTask WriteRealtimeCoreAsync(byte command, CancellationToken ct)
    {
        // A real-time byte waits only for a line write already in progress (microseconds in process,
        // one short write to the port's driver on a wire): waiting for it synchronously keeps a stop
        // byte off a busy thread pool's queue. Only if it takes longer does the wait become async.
#pragma warning disable CA1849 // deliberate: a wait of at most RealtimeLockSpin keeps the stop byte off a busy thread pool (above)
        if (!_writeLock.Wait(RealtimeLockSpin, ct))
#pragma warning restore CA1849
        {
            await _writeLock.WaitAsync(ct);
        }
        try
        {
            _realtimeWriteBuffer[0] = command;
            await WriteToTransportAsync(_realtimeWriteBuffer);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    // Caller holds _writeLock.
    private async ValueTask WriteToTransportAsync(ReadOnlyMemory<byte> data)
    {
        try
        {
            await _transport.WriteAsync(data, _lifetime.Token);
        }
        catch (OperationCanceledException) when (_lifetime.IsCancellationRequested)
        {
            throw new GantryFaultException(GantryFaultKind.Closed, 0, "the gantry client was disposed during a write");
        }
        catch (Exception ex) when (ex is not GantryFaultException)
        {
            var fault = new GantryFaultException(GantryFaultKind.LinkLost, 0, $"write to {_transport.Description} failed: {ex.Message}");
            EnterFault(fault, latch: true, terminal: true);
            throw fault;
        }
    }

    private async Task PollLoopAsync(PeriodicTimer timer, CancellationToken ct)
    {
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                lock (_gate)
                {
                    if (_terminal || _disposed)
                    {
                        return;
                    }

                    // Nothing to learn while a reset is settling or the link is already known lost.
                    if (_expectingBanner || _latchedFault?.Kind == GantryFaultKind.LinkLost || _lockingAlarm is not null)
                    {
                        continue;
                    }
                }

                try
                {
                    await QueryStatusAsync(ct);
                }
                catch (GantryFaultException)
                {
                    // Already raised via Faulted where it matters (timeout); keep polling, the loop
                    // skips while LinkLost is latched.
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Stopped.
        }
        finally
        {
            timer.Dispose();
        }
    }

    private async Task ReaderLoopAsync(CancellationToken ct)
    {
        try
        {
            while (true)
            {
                int count = await _transport.ReadAsync(_readBuffer, ct);
                if (count <= 0)
                {
                    EnterFault(new GantryFaultException(GantryFaultKind.LinkLost, 0, $"{_transport.Description} closed"), latch: true, terminal: true);
                    return;
                }

                long timestamp = _time.GetTimestamp();
                ProcessBytes(_readBuffer.AsSpan(0, count), timestamp);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Disposed.
        }
#pragma warning disable CA1031 // whatever a transport throws on read, the link is lost: it becomes a LinkLost fault
        catch (Exception ex)
#pragma warning restore CA1031
        {
            EnterFault(new GantryFaultException(GantryFaultKind.LinkLost, 0, $"read from {_transport.Description} failed: {ex.Message}"), latch: true, terminal: true);
        }
    }

    private void ProcessBytes(ReadOnlySpan<byte> data, long timestamp)
    {
        foreach (byte b in data)
        {
            if (b == (byte)'\n')
            {
                int length = _lineLength;
                bool overflow = _lineOverflow;
                _lineLength = 0;
                _lineOverflow = false;
                if (length > 0 && _lineBuffer[length - 1] == (byte)'\r')
                {
                    length--;
                }

                if (overflow)
                {
                    HandleUnknownLine("(line longer than " + MaxLineBytes.ToString(CultureInfo.InvariantCulture) + " bytes)");
                }
                else
                {
                    HandleLine(_lineBuffer.AsSpan(0, length), timestamp);
                }
            }
            else if (_lineLength < _lineBuffer.Length)
            {
                _lineBuffer[_lineLength++] = b;
            }
            else
            {
                _lineOverflow = true;
            }
        }
    }

    private void HandleLine(ReadOnlySpan<byte> line, long timestamp)
    {
        if (line.IsEmpty)
        {
            return;
        }

        // The hot path: one ok per streamed line, recognised without allocating a string.
        if (line.SequenceEqual("ok"u8))
        {
            HandleAck(ok: true, 0);
            return;
        }

        if (line.StartsWith("error:"u8))
        {
            if (TryParseCode(line[6..], out int errorCode))
            {
                HandleAck(ok: false, errorCode);
            }
            else
            {
                HandleUnknownLine(Encoding.Latin1.GetString(line));
            }

            return;
        }

        if (line.StartsWith("ALARM:"u8))
        {
            if (TryParseCode(line[6..], out int alarmCode))
            {
                HandleAlarm(alarmCode);
            }
            else
            {
                HandleUnknownLine(Encoding.Latin1.GetString(line));
            }

            return;
        }

        string text = Encoding.Latin1.GetString(line);
        switch (text[0])
        {
            case '<':
                HandleStatus(text, timestamp);
                return;
            case '[':
                if (GrblProtocol.TryParseProbe(text, timestamp, out var probe)) HandleProbe(probe!);
                Raise(MessageReceived, text, static t => new GrblTextEventArgs(t));
                return;
            case '>':
                Raise(MessageReceived, text, static t => new GrblTextEventArgs(t));
                return;
            case '$':
                HandleDollarLine(text);
                return;
            default:
                if (GrblProtocol.IsBanner(text))
                {
                    HandleBanner(text);
                }
                else
                {
                    HandleUnknownLine(text);
                }

                return;
        }
    }

    private static bool TryParseCode(ReadOnlySpan<byte> digits, out int code)
    {
        code = 0;
        if (digits.IsEmpty || digits.Length > 5)
        {
            return false;
        }

        foreach (byte d in digits)
        {
            if (d is < (byte)'0' or > (byte)'9')
            {
                return false;
            }

            code = (code * 10) + (d - '0');
        }

        return true;
    }

    /// <summary>
    /// A probe report belongs to the oldest line not yet answered: grbl runs a probe cycle only after everything
    /// before it has executed (and was answered), and prints the report before the cycle's own ok.
    /// </summary>
    private void HandleProbe(ProbeReport report)
    {
        lock (_gate)
        {
            _lastProbe = report;
            if (_answersOwedAfterAlarm == 0 && _inFlight.TryPeek(out var executing)) executing.Probe = report;
        }
    }

    /// <summary>The last probe report read (<c>[PRB:…]</c>), or null before any.</summary>
    public ProbeReport? LastProbe { get { lock (_gate) { return _lastProbe; } } }

    private ProbeReport? _lastProbe;

    private void HandleAck(bool ok, int errorCode)
    {
        PendingLine? pending;
        TaskCompletionSource? room = null;
        lock (_gate)
        {
            // Before the banner (boot noise), during a reset (acks of flushed lines) and after a
            // latched fault (acks of lines already given up on) an ack belongs to nothing we track.
            if (!_connected || _expectingBanner || _latchedFault is not null)
            {
                return;
            }

            if (_answersOwedAfterAlarm > 0)
            {
                _answersOwedAfterAlarm--;
                return;
            }

            if (_inFlight.TryDequeue(out pending))
            {
                _bytesInFlight -= pending.ByteCount;
                room = TakeRoomSignal();
            }
        }

        if (pending is null)
        {
            var text = ok ? "ok" : "error:" + errorCode.ToString(CultureInfo.InvariantCulture);
            EnterFault(new GantryFaultException(GantryFaultKind.Protocol, 0, $"'{text}' with no line in flight: character counting is out of step"), latch: true, terminal: false);
            return;
        }

        room?.TrySetResult();
        pending.Ack.TrySetResult(ok
            ? new LineAck(pending.Line, true, 0, string.Empty, pending.Probe)
            : new LineAck(pending.Line, false, errorCode, GrblProtocol.ErrorText(errorCode), pending.Probe));
    }

    private void HandleAlarm(int code)
    {
        lock (_gate)
        {
            _lastAlarmCode = code;
            // grbl still answers the line it was executing (soft limit: ALARM:2, [MSG:Reset to continue], ok;
            // failed $H: ALARM:9, ok). After a hard or soft limit (critical) it then answers nothing until a
            // reset flushes the rest; after another alarm it goes on answering the lines behind (error:9).
            // Those answers belong to lines whose callers the alarm fails now, and come before any answer
            // to a line sent after the alarm.
            var critical = code is 1 or 2;
            _answersOwedAfterAlarm += critical ? Math.Min(1, _inFlight.Count) : _inFlight.Count;
            if (critical)
            {
                _lockingAlarm = code;
                _lockingAlarmTimestamp = _time.GetTimestamp();
            }

            // Homing failures (6 reset, 7 door, 8 pull-off, 9 switch not found) end with grbl resetting itself.
            _bannerAfterHomingAlarm = code is >= 6 and <= 9;
        }

        // grbl flushes its buffers on an alarm, so counting restarts at zero.
        var fault = new GantryFaultException(GantryFaultKind.Alarm, code, $"ALARM:{code.ToString(CultureInfo.InvariantCulture)} {GrblProtocol.AlarmText(code)}");
        EnterFault(fault, latch: false, terminal: false);
    }

    private void HandleStatus(string text, long timestamp)
    {
        Vec3? knownOffset;
        lock (_gate)
        {
            knownOffset = _lastWorkOffset;
        }

        if (!GrblProtocol.TryParseStatus(text, timestamp, knownOffset, out var status, out var reportedOffset) || status is null)
        {
            if (text.Length >= 2 && text[^1] == '>')
            {
                HandleGarbledStatus(text, timestamp);
            }
            else
            {
                HandleUnknownLine(text);
            }

            return;
        }

        TaskCompletionSource<GrblStatus?>[] waiters;
        lock (_gate)
        {
            _garbledStatusInARow = 0;
            if (reportedOffset is not null)
            {
                _lastWorkOffset = reportedOffset;
            }

            _lastStatus = status;
            waiters = DrainStatusWaiters();
        }

        foreach (var waiter in waiters)
        {
            waiter.TrySetResult(status);
        }

        Raise(StatusReceived, status, static s => new GrblStatusEventArgs(s));
    }

    /// <summary>
    /// A line framed as a status report whose fields do not parse: a report damaged on the wire, not a
    /// response, so no ack is out of step. Counted and dropped (waiting queries ask again); too many in
    /// a row or per minute is a link fault.
    /// </summary>
    private void HandleGarbledStatus(string text, long timestamp)
    {
        TaskCompletionSource<GrblStatus?>[] waiters;
        string? tooMany = null;
        lock (_gate)
        {
            if (!_connected || _expectingBanner)
            {
                return;
            }

            _garbledStatusTotal++;
            _garbledStatusInARow++;
            _lastGarbledStatus = text.Length > 120 ? text[..120] + "…" : text;
            var minuteAgo = timestamp - _time.TimestampFrequency * 60;
            _garbledStatusTimes.Enqueue(timestamp);
            while (_garbledStatusTimes.Count > 0 && _garbledStatusTimes.Peek() < minuteAgo)
            {
                _garbledStatusTimes.Dequeue();
            }

            if (_garbledStatusInARow >= _options.GarbledStatusInARowLimit)
            {
                tooMany = $"{_garbledStatusInARow.ToString(CultureInfo.InvariantCulture)} garbled status reports in a row (last '{_lastGarbledStatus}')";
            }
            else if (_garbledStatusTimes.Count > _options.GarbledStatusPerMinuteLimit)
            {
                tooMany = $"{_garbledStatusTimes.Count.ToString(CultureInfo.InvariantCulture)} garbled status reports within a minute, more than {_options.GarbledStatusPerMinuteLimit.ToString(CultureInfo.InvariantCulture)} (last '{_lastGarbledStatus}')";
            }

            waiters = tooMany is null ? DrainStatusWaiters() : [];
        }

        if (tooMany is not null)
        {
            EnterFault(new GantryFaultException(GantryFaultKind.LinkLost, 0, $"the serial link damages status reports: {tooMany} on {_transport.Description}"), latch: true, terminal: false);
            return;
        }

        foreach (var waiter in waiters)
        {
            waiter.TrySetResult(null);
        }

        Raise(GarbledStatusReceived, text, static t => new GrblTextEventArgs(t));
    }

    private void HandleDollarLine(string text)
    {
        // "$N=value" answers "$$"; other '$' lines ("$N0=…" startup blocks) are feedback.
        int equals = text.IndexOf('=', StringComparison.Ordinal);
        if (equals > 1 && int.TryParse(text.AsSpan(1, equals - 1), NumberStyles.None, CultureInfo.InvariantCulture, out int number))
        {
            lock (_gate)
            {
                _settingsCollector?[number] = text[(equals + 1)..];
            }

            return;
        }

        Raise(MessageReceived, text, static t => new GrblTextEventArgs(t));
    }

    private void HandleBanner(string banner)
    {
        TaskCompletionSource<string>? waiter = null;
        bool expected;
        lock (_gate)
        {
            _banner = banner;
            _answersOwedAfterAlarm = 0; // a restarted board answers nothing it had before
            _lockingAlarm = null;
            expected = _expectingBanner;
            if (!expected && _extraBannersTolerated > 0 && _inFlight.Count == 0)
            {
                // The board reset once more for a repeated reset whose first banner was already on its way:
                // nothing was in flight, nothing is lost.
                _extraBannersTolerated--;
                return;
            }

            _extraBannersTolerated = 0;
            if (!expected && _bannerAfterHomingAlarm && _inFlight.Count == 0)
            {
                // A failed homing cycle: grbl answers ALARM:6..9, the $H's ok, then resets itself. The alarm
                // already failed whatever was in flight; this banner is that reset, not a surprise.
                _bannerAfterHomingAlarm = false;
                _bytesInFlight = 0;
                _lastWorkOffset = null;
                return;
            }

            _bannerAfterHomingAlarm = false;
            if (expected)
            {
                _expectingBanner = false;
                waiter = _bannerWaiter;
                _bannerWaiter = null;
                if (!_terminal)
                {
                    // The firmware just restarted on our request: its buffer is empty and so is ours.
                    _latchedFault = null;
                    _connected = true;
                    _bytesInFlight = 0;
                    _lastWorkOffset = null;
                    _garbledStatusInARow = 0;
                    _garbledStatusTimes.Clear();
                    _answersOwedAfterAlarm = 0;
                }
            }
        }

        if (expected)
        {
            waiter?.TrySetResult(banner);
            return;
        }

        EnterFault(new GantryFaultException(GantryFaultKind.Reset, 0, "the firmware restarted unexpectedly (welcome banner mid-stream): queued lines are lost"), latch: true, terminal: false);
    }

    private void HandleUnknownLine(string text)
    {
        lock (_gate)
        {
            // Boot noise before the banner and garbage during a reset are expected.
            if (!_connected || _expectingBanner)
            {
                return;
            }
        }

        EnterFault(new GantryFaultException(GantryFaultKind.Protocol, 0, $"line not understood: '{text}'"), latch: true, terminal: false);
    }

    /// <summary>
    /// Fails every pending ack with <paramref name="fault"/>, restarts counting at zero, optionally
    /// latches the fault (sending refused) or ends the link for good, and raises <see cref="Faulted"/>.
    /// </summary>
    private void EnterFault(GantryFaultException fault, bool latch, bool terminal, bool raise = true)
    {
        PendingLine[] pending;
        TaskCompletionSource<GrblStatus?>[] statusWaiters = [];
        TaskCompletionSource? room;
        TaskCompletionSource<string>? bannerWaiter = null;
        lock (_gate)
        {
            if (_terminal)
            {
                return; // Already dead and reported.
            }

            var previous = _latchedFault;
            // Alarms always carry news about the machine; a second Reset/Protocol/LinkLost on an
            // already latched link adds nothing (a LinkLost is still reported over a milder latch).
            bool alreadyReported = fault.Kind != GantryFaultKind.Alarm
                && previous is not null
                && (fault.Kind != GantryFaultKind.LinkLost || previous.Kind == GantryFaultKind.LinkLost);
            raise &= !alreadyReported;

            pending = DrainInFlight();
            room = TakeRoomSignal();
            if (latch && (previous is null || fault.Kind is GantryFaultKind.LinkLost or GantryFaultKind.Closed))
            {
                _latchedFault = fault;
            }

            if (fault.Kind is GantryFaultKind.LinkLost or GantryFaultKind.Closed or GantryFaultKind.Reset)
            {
                // grbl forgets pending '?' on reset; a lost link will not answer them.
                statusWaiters = DrainStatusWaiters();
            }

            if (fault.Kind is GantryFaultKind.LinkLost or GantryFaultKind.Closed)
            {
                _connected = false;
            }

            if (terminal)
            {
                _terminal = true;
                _connected = false;
                bannerWaiter = _bannerWaiter;
                _bannerWaiter = null;
                _expectingBanner = false;
            }
        }

        FailAll(pending, statusWaiters, room, fault);
        bannerWaiter?.TrySetException(fault);
        if (raise)
        {
            Raise(Faulted, fault, static x => new GantryFaultEventArgs(x));
        }
    }

    private static void FailAll(PendingLine[] pending, TaskCompletionSource<GrblStatus?>[] statusWaiters, TaskCompletionSource? room, GantryFaultException fault)
    {
        // Wake a sender waiting for room: it re-checks the state and throws.
        room?.TrySetResult();
        foreach (var line in pending)
        {
            line.Ack.TrySetException(fault);
        }

        foreach (var waiter in statusWaiters)
        {
            waiter.TrySetException(fault);
        }
    }

    private PendingLine[] DrainInFlight()
    {
        // Caller holds _gate.
        _bytesInFlight = 0;
        if (_inFlight.Count == 0)
        {
            return [];
        }

        var lines = _inFlight.ToArray();
        _inFlight.Clear();
        return lines;
    }

    private TaskCompletionSource<GrblStatus?>[] DrainStatusWaiters()
    {
        // Caller holds _gate.
        if (_statusWaiters.Count == 0)
        {
            return [];
        }

        var waiters = _statusWaiters.ToArray();
        _statusWaiters.Clear();
        return waiters;
    }

    private TaskCompletionSource? TakeRoomSignal()
    {
        // Caller holds _gate.
        var signal = _roomSignal;
        _roomSignal = null;
        return signal;
    }

    // The arguments are made only when someone listens (status reports and messages come many times a second).
    private void Raise<T, TArgs>(EventHandler<TArgs>? handler, T value, Func<T, TArgs> args)
        where TArgs : EventArgs
    {
        if (handler is null)
        {
            return;
        }

        try
        {
            handler(this, args(value));
        }
#pragma warning disable CA1031 // a subscriber's bug must not stop the reader loop (and with it fault detection)
        catch (Exception)
#pragma warning restore CA1031
        {
            // A subscriber's bug must not stop the reader loop (and with it fault detection).
        }
    }

    private sealed class PendingLine(string line, int byteCount)
    {
        public string Line { get; } = line;
        public int ByteCount { get; } = byteCount;
        public TaskCompletionSource<LineAck> Ack { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        /// <summary>The probe report that arrived while this line was the oldest unanswered one (written under the client's lock).</summary>
        public ProbeReport? Probe { get; set; }
    }
}

/// <summary>A line the firmware sent (<see cref="GrblClient.MessageReceived"/>, <see cref="GrblClient.GarbledStatusReceived"/>).</summary>
public sealed class GrblTextEventArgs(string text) : EventArgs
{
    /// <summary>The line as received.</summary>
    public string Text { get; } = text;
}

/// <summary>A status report (<see cref="GrblClient.StatusReceived"/>).</summary>
public sealed class GrblStatusEventArgs(GrblStatus status) : EventArgs
{
    /// <summary>The report.</summary>
    public GrblStatus Status { get; } = status;
}

/// <summary>A firmware fault (<see cref="GrblClient.Faulted"/>, <see cref="GantryConnection.Faulted"/>).</summary>
public sealed class GantryFaultEventArgs(GantryFaultException fault) : EventArgs
{
    /// <summary>The fault.</summary>
    public GantryFaultException Fault { get; } = fault;
}
