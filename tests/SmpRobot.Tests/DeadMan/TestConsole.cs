using Grpc.Core;
using SmpRobot.Contracts.V1;
using SmpRobot.Tests.Integration;

namespace SmpRobot.Tests.DeadMan;

/// <summary>An operator console's heartbeat (every 100 ms, as smp sends it) that a test can silence or hang up.</summary>
internal sealed class TestConsole : IAsyncDisposable
{
    private readonly AsyncDuplexStreamingCall<Heartbeat, SafetyStatus> _call;
    private readonly CancellationTokenSource _beats = new();
    private readonly CancellationTokenSource _stream = new();
    private readonly Task _sending;
    private readonly Task _receiving;
    private readonly TaskCompletionSource _firstAnswer = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _lastBeatTimestamp;

    private TestConsole(SafetyService.SafetyServiceClient safety, string consoleId)
    {
        ConsoleId = consoleId;
        _call = safety.OperatorHeartbeat(cancellationToken: _stream.Token);
        _receiving = Task.Run(async () =>
        {
            try
            {
                while (await _call.ResponseStream.MoveNext(_stream.Token))
                {
                    // The controller answers a beat after recording it.
                    _firstAnswer.TrySetResult();
                }
            }
            catch (Exception e) when (e is OperationCanceledException or RpcException or InvalidOperationException)
            {
            }
        });
        _sending = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
            ulong sequence = 0;
            try
            {
                do
                {
                    await _call.RequestStream.WriteAsync(new Heartbeat { Operator = consoleId + " operator", Sequence = ++sequence, ConsoleId = consoleId });
                    Interlocked.Exchange(ref _lastBeatTimestamp, TimeProvider.System.GetTimestamp());
                }
                while (await timer.WaitForNextTickAsync(_beats.Token));
            }
            catch (Exception e) when (e is OperationCanceledException or RpcException or InvalidOperationException)
            {
            }
        });
    }

    public string ConsoleId { get; }

    /// <summary>TimeProvider.System timestamp of the last beat written.</summary>
    public long LastBeatTimestamp => Interlocked.Read(ref _lastBeatTimestamp);

    /// <summary>Opens the stream and waits until the controller has recorded the first beat.</summary>
    public static async Task<TestConsole> StartAsync(ControllerFixture c, string consoleId)
    {
        var console = new TestConsole(c.Safety, consoleId);
        await console._firstAnswer.Task.WaitAsync(ControllerFixture.Timeout);
        return console;
    }

    /// <summary>Stops beating but keeps the stream open (a hung console, a frozen network).</summary>
    public async Task GoSilentAsync()
    {
        await _beats.CancelAsync();
        await _sending.WaitAsync(ControllerFixture.Timeout);
    }

    /// <summary>Hangs up (a console that was killed): the stream closes.</summary>
    public async Task HangUpAsync()
    {
        await _beats.CancelAsync();
        await _sending.WaitAsync(ControllerFixture.Timeout);
        await _stream.CancelAsync();
        _call.Dispose();
        await _receiving.WaitAsync(ControllerFixture.Timeout);
    }

    public async ValueTask DisposeAsync()
    {
        await HangUpAsync();
        _beats.Dispose();
        _stream.Dispose();
    }
}
