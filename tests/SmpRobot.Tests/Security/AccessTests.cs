using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Security;
using SmpRobot.Controller.Storage;
using SmpRobot.Tests.Integration;

namespace SmpRobot.Tests.Security;

/// <summary>
/// Who may do what, against a real controller that asks for tokens: every method of every service has a role policy,
/// each role meets each method as the policy says, tokens are revoked at once, the e-stop works for every role, and
/// state-changing calls land in the audit log with who made them.
/// </summary>
public sealed class AccessTests : IAsyncLifetime
{
    private ControllerFixture _controller = null!;
    private readonly Dictionary<Role, string> _tokens = [];

    public async Task InitializeAsync()
    {
        _controller = await ControllerFixture.StartAsync(configure: o => o with { InsecureLoopback = false });
        var store = _controller.Services.GetRequiredService<LedgerStore>();
        foreach (var role in Roles.All) _tokens[role] = UserAccounts.Add(store, "user-" + role.Name(), role, "test").Token;
        _controller.Services.GetRequiredService<UserDirectory>().Reload();
    }

    public async Task DisposeAsync() => await _controller.DisposeAsync();

    /// <summary>Every service the controller maps, as its descriptors say.</summary>
    private static IEnumerable<Google.Protobuf.Reflection.ServiceDescriptor> Services() =>
        new[] { SafetyReflection.Descriptor, SessionReflection.Descriptor, MachineReflection.Descriptor, CameraReflection.Descriptor, CalibrationReflection.Descriptor, SurfaceReflection.Descriptor, AccessReflection.Descriptor, TreatmentsReflection.Descriptor,
            Grpc.Health.V1.HealthReflection.Descriptor, Grpc.Reflection.V1Alpha.ReflectionReflection.Descriptor }
        .SelectMany(f => f.Services);

    private static IEnumerable<MethodDescriptor> Methods() => Services().SelectMany(s => s.Methods);

    private static string PathOf(MethodDescriptor m) => "/" + m.Service.FullName + "/" + m.Name;

    [Fact]
    public void Every_method_of_every_service_has_a_role_policy_and_every_policy_a_method()
    {
        var paths = Methods().Select(PathOf).ToHashSet();
        var missing = paths.Where(p => RpcPolicies.Of(p) is null).ToList();
        Assert.True(missing.Count == 0, "methods without a policy (refused to everyone): " + string.Join(", ", missing));
        var stale = RpcPolicies.All.Keys.Where(k => !paths.Contains(k) && !k.StartsWith("/grpc.reflection.v1.", StringComparison.Ordinal)).ToList();
        Assert.True(stale.Count == 0, "policies of no method: " + string.Join(", ", stale));
        // Only health is open to callers without a token; only reads are not audited (and the heartbeat, user lists and the audit itself).
        Assert.All(RpcPolicies.All.Where(p => p.Value.MinimumRole is null), p => Assert.StartsWith("/grpc.health.v1.Health/", p.Key, StringComparison.Ordinal));
        Assert.Equal(Role.Observer, RpcPolicies.Of("/smprobot.v1.SafetyService/EmergencyStop")!.MinimumRole);
    }

    /// <summary>Calls <paramref name="method"/> with an empty request and returns the status it ended with (OK, or what refused it), within 1.5 s.</summary>
    private static async Task<StatusCode> CallAsync(CallInvoker invoker, MethodDescriptor method)
    {
        var input = Marshallers.Create<IMessage>(m => m.ToByteArray(), b => method.InputType.Parser.ParseFrom(b));
        var output = Marshallers.Create<IMessage>(m => m.ToByteArray(), b => method.OutputType.Parser.ParseFrom(b));
        var type = (method.IsClientStreaming, method.IsServerStreaming) switch
        {
            (false, false) => MethodType.Unary,
            (false, true) => MethodType.ServerStreaming,
            (true, false) => MethodType.ClientStreaming,
            _ => MethodType.DuplexStreaming,
        };
        var call = new Method<IMessage, IMessage>(type, method.Service.FullName, method.Name, input, output);
        var options = new CallOptions(deadline: DateTime.UtcNow.AddSeconds(1.5));
        var empty = method.InputType.Parser.ParseFrom(ByteString.Empty);
        try
        {
            switch (type)
            {
                case MethodType.Unary:
                    await invoker.AsyncUnaryCall(call, null, options, empty);
                    break;
                case MethodType.ServerStreaming:
                    using (var stream = invoker.AsyncServerStreamingCall(call, null, options, empty))
                    {
                        await stream.ResponseStream.MoveNext(CancellationToken.None);
                    }
                    break;
                default:
                    using (var duplex = invoker.AsyncDuplexStreamingCall(call, null, options))
                    {
                        await duplex.RequestStream.CompleteAsync();
                        await duplex.ResponseStream.MoveNext(CancellationToken.None);
                    }
                    break;
            }
            return StatusCode.OK;
        }
        catch (RpcException e)
        {
            return e.StatusCode;
        }
    }

    private CallInvoker Invoker(string? token) => SmpRobot.Operator.Cli.ControllerConnection.WithToken(_controller.Channel.CreateCallInvoker(), token);

    [Fact]
    public async Task Each_role_meets_each_method_as_the_role_policy_says_and_no_token_meets_unauthenticated()
    {
        var problems = new List<string>();
        foreach (var role in new Role?[] { null, Role.Observer, Role.Operator, Role.Engineer, Role.Admin })
        {
            var invoker = Invoker(role is { } r ? _tokens[r] : null);
            var methods = Methods().ToList();
            var statuses = await Task.WhenAll(methods.Select(m => CallAsync(invoker, m))).WaitAsync(ControllerFixture.Timeout);
            for (var i = 0; i < methods.Count; i++)
            {
                var policy = RpcPolicies.Of(PathOf(methods[i]))!;
                var allowed = policy.MinimumRole is null || (role is { } have && have >= policy.MinimumRole);
                var expected = allowed ? "not refused" : role is null ? StatusCode.Unauthenticated.ToString() : StatusCode.PermissionDenied.ToString();
                var ok = allowed ? statuses[i] is not (StatusCode.Unauthenticated or StatusCode.PermissionDenied) : statuses[i] == (role is null ? StatusCode.Unauthenticated : StatusCode.PermissionDenied);
                if (!ok) problems.Add($"{role?.Name() ?? "no token"} → {PathOf(methods[i])}: {statuses[i]}, expected {expected}");
            }
        }
        Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems));
    }

    [Fact]
    public async Task The_audit_log_records_every_state_changing_method_with_who_called_it_and_how_it_ended()
    {
        var audited = Methods().Where(m => RpcPolicies.Of(PathOf(m))!.Audited).ToList();
        Assert.True(audited.Count >= 18, $"only {audited.Count} audited methods");
        var statuses = new Dictionary<(string, Role), StatusCode>();
        foreach (var role in new[] { Role.Observer, Role.Admin })
        {
            var invoker = Invoker(_tokens[role]);
            // One after another: a long call (a calibration) must end, as its entry is written when it ends.
            foreach (var m in audited) statuses[(PathOf(m), role)] = await CallAsync(invoker, m).WaitAsync(ControllerFixture.Timeout);
        }
        await _controller.Services.GetRequiredService<SmpRobot.Controller.Services.DeferredAuditWrites>().WhenWritten().WaitAsync(ControllerFixture.Timeout);
        var log = _controller.Services.GetRequiredService<LedgerStore>().ListCallAudit(null, null, 10_000);
        var missing = new List<string>();
        foreach (var ((path, role), status) in statuses)
        {
            // A call the client gave up on may still be running in the controller: its entry comes when it ends.
            if (status == StatusCode.DeadlineExceeded) continue;
            var entry = log.FirstOrDefault(e => e.Rpc == path && e.Identity == "user-" + role.Name());
            var denied = RpcPolicies.Of(path)!.MinimumRole > role;
            if (entry is null) missing.Add($"{role.Name()} → {path} ({status}): no entry");
            else if (entry.Role != role.Name() || (denied != entry.Result.StartsWith("PermissionDenied", StringComparison.Ordinal))) missing.Add($"{role.Name()} → {path}: {entry.Role}, {entry.Result}");
            else if (!denied && (status == StatusCode.OK) != (entry.Result == "OK")) missing.Add($"{role.Name()} → {path}: ended {status}, logged {entry.Result}");
        }
        Assert.True(missing.Count == 0, string.Join(Environment.NewLine, missing));
        Assert.Throws<Microsoft.Data.Sqlite.SqliteException>(() => UpdateAuditDirectly());
    }

    [Fact]
    public async Task A_path_in_other_case_is_neither_let_through_nor_left_out_of_the_audit()
    {
        // Routing matches paths without regard to case; the policy, the bounds and the audit must follow the method, not the spelling.
        var pause = SessionReflection.Descriptor.Services.Single(s => s.Name == "SessionService").Methods.Single(m => m.Name == "Pause");
        var shouting = new Method<SessionRef, Session>(MethodType.Unary, "SMPROBOT.V1.SESSIONSERVICE", "PAUSE",
            Marshallers.Create<SessionRef>(m => m.ToByteArray(), SessionRef.Parser.ParseFrom), Marshallers.Create<Session>(m => m.ToByteArray(), Session.Parser.ParseFrom));
        var observer = await Assert.ThrowsAsync<RpcException>(async () => await Invoker(_tokens[Role.Observer]).AsyncUnaryCall(shouting, null, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(10)), new SessionRef { SessionId = "s-x" }));
        var admin = await Assert.ThrowsAsync<RpcException>(async () => await Invoker(_tokens[Role.Admin]).AsyncUnaryCall(shouting, null, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(10)), new SessionRef { SessionId = new string('s', 5000) }));
        if (observer.StatusCode == StatusCode.Unimplemented)
        {
            Assert.Equal(StatusCode.Unimplemented, admin.StatusCode); // case-sensitive routing: nothing reached at all
            return;
        }
        Assert.Equal(StatusCode.PermissionDenied, observer.StatusCode);
        Assert.Equal(StatusCode.InvalidArgument, admin.StatusCode); // the bounds checked it as Pause's request
        var notFound = await Assert.ThrowsAsync<RpcException>(async () => await Invoker(_tokens[Role.Admin]).AsyncUnaryCall(shouting, null, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(10)), new SessionRef { SessionId = "s-x" }));
        Assert.Equal(StatusCode.NotFound, notFound.StatusCode);
        // A trailing slash reaches the method too: checked as its request as well.
        var slashed = new Method<SessionRef, Session>(MethodType.Unary, "smprobot.v1.SessionService", "Pause/", shouting.RequestMarshaller, shouting.ResponseMarshaller);
        var slashedBig = await Assert.ThrowsAsync<RpcException>(async () => await Invoker(_tokens[Role.Admin]).AsyncUnaryCall(slashed, null, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(10)), new SessionRef { SessionId = new string('s', 5000) }));
        Assert.True(slashedBig.StatusCode is StatusCode.InvalidArgument or StatusCode.Unimplemented, slashedBig.Status.ToString());
        var log = _controller.Services.GetRequiredService<LedgerStore>().ListCallAudit(null, null, 100);
        Assert.Contains(log, e => e.Rpc == PathOf(pause) && e.Identity == "user-observer" && e.Result.StartsWith("PermissionDenied", StringComparison.Ordinal));
        Assert.Contains(log, e => e.Rpc == PathOf(pause) && e.Identity == "user-admin" && e.Result.StartsWith("NotFound", StringComparison.Ordinal));
    }

    /// <summary>Tries to change the audit log behind the controller's back: the store's triggers refuse it.</summary>
    private void UpdateAuditDirectly()
    {
        using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(_controller.DataDirectory, "smp.db")};Pooling=False");
        connection.Open();
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "UPDATE call_audit SET identity = 'nobody'";
        cmd.ExecuteNonQuery();
    }

    [Fact]
    public async Task An_observer_can_neither_reset_the_latch_nor_jog_and_the_latch_stays()
    {
        var observer = new SafetyService.SafetyServiceClient(Invoker(_tokens[Role.Observer]));
        var stopped = await observer.EmergencyStopAsync(new EmergencyStopRequest { Reason = "observer saw something" });
        Assert.True(stopped.EstopLatched);
        var reset = await Assert.ThrowsAsync<RpcException>(async () => await observer.ResetEmergencyStopAsync(new ResetEmergencyStopRequest()));
        Assert.Equal(StatusCode.PermissionDenied, reset.StatusCode);
        Assert.Contains("needs the operator role", reset.Status.Detail, StringComparison.Ordinal);
        var jog = await Assert.ThrowsAsync<RpcException>(async () => await new MachineService.MachineServiceClient(Invoker(_tokens[Role.Observer])).JogAsync(new JogRequest { DxMm = 1 }));
        Assert.Equal(StatusCode.PermissionDenied, jog.StatusCode);
        Assert.True((await observer.GetSafetyStatusAsync(new GetSafetyStatusRequest())).EstopLatched);
        // The refused reset is a security event in the audit log.
        var audit = _controller.Services.GetRequiredService<LedgerStore>().ListCallAudit(null, null, 100);
        Assert.Contains(audit, e => e.Rpc.EndsWith("/ResetEmergencyStop", StringComparison.Ordinal) && e.Identity == "user-observer" && e.Result.StartsWith("PermissionDenied", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_emergency_stop_works_for_every_role_and_the_reset_records_who_did_it()
    {
        var operatorSafety = new SafetyService.SafetyServiceClient(Invoker(_tokens[Role.Operator]));
        foreach (var role in Roles.All)
        {
            var status = await new SafetyService.SafetyServiceClient(Invoker(_tokens[role])).EmergencyStopAsync(new EmergencyStopRequest { Reason = "drill " + role.Name() });
            Assert.True(status.EstopLatched, $"{role.Name()}'s e-stop did not latch");
            Assert.False((await operatorSafety.ResetEmergencyStopAsync(new ResetEmergencyStopRequest { Source = "console 2" })).EstopLatched);
        }
        var audit = _controller.Services.GetRequiredService<LedgerStore>().ListCallAudit(null, null, 100);
        Assert.Equal(4, audit.Count(e => e.Rpc.EndsWith("/ResetEmergencyStop", StringComparison.Ordinal) && e.Identity == "user-operator" && e.Result == "OK"));
        // The e-stop's own entries are written after its reply.
        await _controller.Services.GetRequiredService<SmpRobot.Controller.Services.DeferredAuditWrites>().WhenWritten().WaitAsync(ControllerFixture.Timeout);
        var stops = _controller.Services.GetRequiredService<LedgerStore>().ListCallAudit(null, null, 100).Where(e => e.Rpc == "/smprobot.v1.SafetyService/EmergencyStop").ToList();
        Assert.Equal(Roles.All.Select(r => "user-" + r.Name()), stops.Select(e => e.Identity));
        Assert.All(stops, e => Assert.Contains("drill", e.Arguments, StringComparison.Ordinal));
    }
}
