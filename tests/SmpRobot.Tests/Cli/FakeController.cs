using System.Net;
using System.Text.Json.Nodes;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SmpRobot.Contracts.V1;
using SmpRobot.Operator.Cli;

namespace SmpRobot.Tests.Cli;

/// <summary>
/// A scripted controller serving the smprobot.v1 protos over real h2c on a loopback port, so the CLI is tested
/// through its real gRPC channels (deadlines, trailers, streams) without the real controller.
/// </summary>
internal sealed class FakeController : IAsyncDisposable
{
    private readonly WebApplication app;

    private FakeController(WebApplication app, Uri address, FakeState state)
    {
        this.app = app;
        Address = address;
        State = state;
    }

    public Uri Address { get; }

    public FakeState State { get; }

    public static async Task<FakeController> StartAsync(FakeState? state = null)
    {
        state ??= new FakeState();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o => o.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        builder.Services.AddSingleton(state);
        builder.Services.AddSingleton<FakeSessions>();
        builder.Services.AddSingleton<FakeSafety>();
        builder.Services.AddSingleton<FakeMachine>();
        var app = builder.Build();
        app.MapGrpcService<FakeSessions>();
        app.MapGrpcService<FakeSafety>();
        app.MapGrpcService<FakeMachine>();
        await app.StartAsync().WaitAsync(TimeSpan.FromSeconds(10));
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new FakeController(app, new Uri(address), state);
    }

    /// <summary>A test host that talks to this controller and reads no real environment.</summary>
    public static CliHost Host(Dictionary<string, string>? env = null) => new()
    {
        GetEnvironmentVariable = name => env is not null && env.TryGetValue(name, out var v) ? v : null,
        OperatorName = "tester",
    };

    public string[] Args(params string[] args) => [.. args, "--controller", Address.ToString()];

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await app.DisposeAsync();
    }
}

/// <summary>What the fake controller does and what it saw.</summary>
internal sealed class FakeState
{
    public bool Homed { get; set; } = true;
    public int HomeCalls;
    public SessionState FinalState { get; set; } = SessionState.Completed;
    public string FinalReason { get; set; } = "";
    public List<string> InDoubtIds { get; } = [];
    public int Heartbeats;
    public int HeartbeatsAtStart = -1;
    public string? CreatedPlanJson;
    public readonly List<EmergencyStopRequest> EmergencyStops = [];
    public ResolveDotsRequest? Resolved;
    public bool EstopLatched { get; set; }

    public Session FinalSession(int total)
    {
        var inDoubt = InDoubtIds.Count;
        var placed = FinalState == SessionState.Completed ? total : Math.Max(0, total / 2 - inDoubt);
        var s = new Session
        {
            Id = "s-1",
            PlanName = "test-plan",
            ProfileName = "sim",
            State = FinalState,
            Reason = FinalReason,
            Dots = new DotCounts { Total = total, Placed = placed, InDoubt = inDoubt, Pending = total - placed - inDoubt },
            ElapsedSeconds = 12.5,
            KinematicSeconds = 10,
            DotsPerSecond = placed / 12.5,
        };
        s.InDoubt.AddRange(InDoubtIds.Select(id => new DotStatus { DotId = id, State = DotState.InDoubt }));
        return s;
    }

    public static int CountDots(string planJson) => (JsonNode.Parse(planJson)?["dots"] as JsonArray)?.Count ?? 0;
}

[System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1812", Justification = "made by the DI container (AddSingleton, MapGrpcService)")]
internal sealed class FakeSessions(FakeState state) : SessionService.SessionServiceBase
{
    private int total;

    public override Task<ValidatePlanResponse> ValidatePlan(ValidatePlanRequest request, ServerCallContext context)
    {
        ThrowIfBad(request.PlanJson, context);
        return Task.FromResult(new ValidatePlanResponse
        {
            PlanName = "test-plan",
            DotCount = FakeState.CountDots(request.PlanJson),
            EstimatedKinematicSeconds = 75.5,
            ProfileName = "sim",
        });
    }

    public override Task<StartReadiness> CheckStart(CheckStartRequest request, ServerCallContext context)
    {
        // As the controller: the latch refuses (and is named with its fix); nothing else here would.
        var readiness = new StartReadiness { Ready = !state.EstopLatched };
        if (state.EstopLatched) readiness.Refusals.Add("the emergency stop is latched: check the patient and the machine, then reset it with smp estop --reset");
        return Task.FromResult(readiness);
    }

    public override Task<Session> CreateSession(CreateSessionRequest request, ServerCallContext context)
    {
        ThrowIfBad(request.PlanJson, context);
        state.CreatedPlanJson = request.PlanJson;
        total = FakeState.CountDots(request.PlanJson);
        return Task.FromResult(new Session { Id = "s-1", PlanName = "test-plan", State = SessionState.Created, Dots = new DotCounts { Total = total, Pending = total } });
    }

    public override Task<Session> Start(SessionRef request, ServerCallContext context)
    {
        state.HeartbeatsAtStart = Volatile.Read(ref state.Heartbeats);
        return Task.FromResult(new Session { Id = request.SessionId, State = SessionState.Running, Dots = new DotCounts { Total = total, Pending = total } });
    }

    public override async Task Watch(WatchSessionRequest request, IServerStreamWriter<SessionEvent> responseStream, ServerCallContext context)
    {
        var machine = new MachineStatus { Connected = true, State = "Run", Homed = true, Position = new Position { XMm = 1, YMm = 2, ZMm = 3 } };
        await responseStream.WriteAsync(new SessionEvent
        {
            Session = new Session { Id = "s-1", State = SessionState.Running, Dots = new DotCounts { Total = total, Placed = total / 2, Pending = total - total / 2 } },
            Machine = machine,
            Message = "dot d1 placed",
        });
        await responseStream.WriteAsync(new SessionEvent { Session = state.FinalSession(total), Machine = machine, Message = "session ended" });
    }

    public override Task<Session> Get(SessionRef request, ServerCallContext context) => Task.FromResult(state.FinalSession(total));

    public override Task<ListSessionsResponse> List(ListSessionsRequest request, ServerCallContext context)
    {
        var reply = new ListSessionsResponse();
        reply.Sessions.Add(state.FinalSession(10));
        return Task.FromResult(reply);
    }

    public override Task<Session> ResolveDots(ResolveDotsRequest request, ServerCallContext context)
    {
        state.Resolved = request;
        return Task.FromResult(state.FinalSession(10));
    }

    public override Task<Session> Pause(SessionRef request, ServerCallContext context) =>
        throw new RpcException(new Status(StatusCode.FailedPrecondition, "session s-1 is not running"));

    private static void ThrowIfBad(string planJson, ServerCallContext context)
    {
        if (!planJson.Contains("\"bad\"", StringComparison.Ordinal)) return;
        var violations = new PlanViolations { Total = 3 };
        violations.Violations.Add(new PlanViolation { DotId = "d1", Rule = "depth-range", Message = "depth 3 mm is outside 0.5..2 mm" });
        violations.Violations.Add(new PlanViolation { DotId = "d2", Rule = "min-spacing", Message = "0.2 mm from d1 (min 0.5 mm)" });
        var trailers = new Metadata { { PlanViolationReport.TrailerKey, violations.ToByteArrayHelper() } };
        throw new RpcException(new Status(StatusCode.InvalidArgument, "plan has 3 violations"), trailers);
    }
}

internal static class ProtoTestExtensions
{
    public static byte[] ToByteArrayHelper(this Google.Protobuf.IMessage message) => Google.Protobuf.MessageExtensions.ToByteArray(message);
}

[System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1812", Justification = "made by the DI container (AddSingleton, MapGrpcService)")]
internal sealed class FakeSafety(FakeState state) : SafetyService.SafetyServiceBase
{
    public override Task<SafetyStatus> GetSafetyStatus(GetSafetyStatusRequest request, ServerCallContext context) =>
        Task.FromResult(new SafetyStatus { EstopLatched = state.EstopLatched });

    public override Task<SafetyStatus> EmergencyStop(EmergencyStopRequest request, ServerCallContext context)
    {
        lock (state.EmergencyStops) state.EmergencyStops.Add(request);
        state.EstopLatched = true;
        var reply = new SafetyStatus { EstopLatched = true, EstopSource = request.Source, EstopReason = request.Reason };
        reply.StopSteps.AddRange(["feed-hold", "needle-off", "queue-flushed", "retracted"]);
        return Task.FromResult(reply);
    }

    public override Task<SafetyStatus> ResetEmergencyStop(ResetEmergencyStopRequest request, ServerCallContext context)
    {
        state.EstopLatched = false;
        return Task.FromResult(new SafetyStatus());
    }

    public override async Task OperatorHeartbeat(IAsyncStreamReader<Heartbeat> requestStream, IServerStreamWriter<SafetyStatus> responseStream, ServerCallContext context)
    {
        try
        {
            while (await requestStream.MoveNext(context.CancellationToken))
            {
                Interlocked.Increment(ref state.Heartbeats);
                await responseStream.WriteAsync(new SafetyStatus { OperatorPresent = true });
            }
        }
        catch (OperationCanceledException)
        {
            // The console went away: that is what the dead-man is for.
        }
    }
}

[System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1812", Justification = "made by the DI container (AddSingleton, MapGrpcService)")]
internal sealed class FakeMachine(FakeState state) : MachineService.MachineServiceBase
{
    public override Task<MachineStatus> GetStatus(GetMachineStatusRequest request, ServerCallContext context) =>
        Task.FromResult(Status());

    public override Task<MachineStatus> Home(HomeRequest request, ServerCallContext context)
    {
        Interlocked.Increment(ref state.HomeCalls);
        state.Homed = true;
        return Task.FromResult(Status());
    }

    private MachineStatus Status() => new()
    {
        Connected = true,
        State = "Idle",
        Homed = state.Homed,
        Gantry = "sim",
        ProfileName = "sim",
        Position = new Position(),
    };
}
