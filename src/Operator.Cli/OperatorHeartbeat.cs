using Grpc.Core;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli;

/// <summary>
/// The operator dead-man: a beat every <see cref="Period"/> on the safety channel for as long as this console
/// supervises a session. When beats stop (console gone, network down) the controller holds the session.
/// </summary>
internal sealed class OperatorHeartbeat : IAsyncDisposable
{
    /// <summary>Beat period; the controller's dead-man timeout (default 400 ms) is a multiple of it.</summary>
    public static readonly TimeSpan Period = TimeSpan.FromMilliseconds(100);

    private readonly AsyncDuplexStreamingCall<Heartbeat, SafetyStatus> call;
    private readonly CancellationTokenSource callCts;
    private readonly CancellationTokenSource sendCts;
    private readonly TaskCompletionSource firstReply = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task sending;
    private readonly Task receiving;
    private volatile SafetyStatus? latest;

    private OperatorHeartbeat(SafetyService.SafetyServiceClient safety, string operatorName, TimeProvider time, CancellationToken ct)
    {
        callCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        sendCts = CancellationTokenSource.CreateLinkedTokenSource(callCts.Token);
        call = safety.OperatorHeartbeat(cancellationToken: callCts.Token);
        sending = SendLoopAsync(operatorName, time, sendCts.Token);
        receiving = ReceiveLoopAsync(callCts.Token);
    }

    /// <summary>
    /// This console's id, sent with every beat: a session started or resumed with it (SessionRef.console_id)
    /// counts only these beats, so another console's beats cannot keep it going.
    /// </summary>
    public string ConsoleId { get; } = "smp-" + Guid.NewGuid().ToString("N")[..12];

    /// <summary>Latest safety status the controller returned on the heartbeat stream.</summary>
    public SafetyStatus? Latest => latest;

    /// <summary>Set when sending or receiving failed; the controller will hold the session.</summary>
    public Exception? Failure { get; private set; }

    public static OperatorHeartbeat Start(SafetyService.SafetyServiceClient safety, string operatorName, TimeProvider time, CancellationToken ct) =>
        new(safety, operatorName, time, ct);

    /// <summary>Waits (bounded) until the controller has answered a beat, so Start sees a live operator.</summary>
    public async Task<bool> WaitForFirstReplyAsync(TimeSpan timeout, TimeProvider time)
    {
        try
        {
            await firstReply.Task.WaitAsync(timeout, time).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private async Task SendLoopAsync(string operatorName, TimeProvider time, CancellationToken ct)
    {
        ulong sequence = 0;
        try
        {
            using var timer = new PeriodicTimer(Period, time);
            do
            {
                await call.RequestStream.WriteAsync(new Heartbeat { Operator = operatorName, Sequence = ++sequence, ConsoleId = ConsoleId }, ct).ConfigureAwait(false);
            }
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (Exception e) when (e is RpcException or InvalidOperationException or IOException)
        {
            Failure ??= e;
        }
    }

    private async Task ReceiveLoopAsync(CancellationToken ct)
    {
        try
        {
            while (await call.ResponseStream.MoveNext(ct).ConfigureAwait(false))
            {
                latest = call.ResponseStream.Current;
                firstReply.TrySetResult();
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && ct.IsCancellationRequested)
        {
        }
        catch (RpcException e)
        {
            Failure ??= e;
        }
    }

    /// <summary>Ends the beats (the console no longer supervises) and closes the stream gracefully, bounded.</summary>
    public async ValueTask DisposeAsync()
    {
        await sendCts.CancelAsync().ConfigureAwait(false);
        await Quietly(sending).ConfigureAwait(false);
        if (Failure is null) await Quietly(call.RequestStream.CompleteAsync()).ConfigureAwait(false);
        await Quietly(receiving).ConfigureAwait(false);
        await callCts.CancelAsync().ConfigureAwait(false);
        call.Dispose();
        sendCts.Dispose();
        callCts.Dispose();
    }

    private static async Task Quietly(Task task)
    {
        try
        {
            await task.WaitAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException or RpcException or InvalidOperationException or IOException)
        {
            // Closing is best effort: the controller treats a vanished stream like missing beats.
        }
    }
}
