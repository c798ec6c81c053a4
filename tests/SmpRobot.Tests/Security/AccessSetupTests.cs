using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller;
using SmpRobot.Controller.Security;
using SmpRobot.Controller.Storage;
using SmpRobot.Operator.Cli;
using SmpRobot.Tests.EndToEnd;
using SmpRobot.Tests.Integration;

namespace SmpRobot.Tests.Security;

/// <summary>Setting a chair up: where it may listen, TLS and its CA, tokens revoked at once, what the audit log keeps, and bounded inputs.</summary>
public sealed class AccessSetupTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("smp-access-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private ControllerOptions Options(string urls, bool insecure = false) => new()
    {
        ProfilePath = Path.Combine(TestProfiles.RepoRoot, "hardware", "profiles", "sim.json"),
        DataDirectory = Path.Combine(_dir, "data"),
        Urls = urls,
        InsecureLoopback = insecure,
        MinimumLogLevel = LogLevel.Warning,
    };

    [Theory]
    [InlineData("http://0.0.0.0:0", false, "needs TLS: use https://0.0.0.0:0 with --tls-cert FILE --tls-key FILE")]
    [InlineData("http://192.168.1.20:50051", false, "needs TLS")]
    [InlineData("http://0.0.0.0:0", true, "--insecure-loopback serves without TLS or authentication and only on a loopback address")]
    [InlineData("https://127.0.0.1:0", false, "give the chair's certificate and key with --tls-cert FILE --tls-key FILE")]
    [InlineData("https://127.0.0.1:0", true, "--insecure-loopback serves without TLS")]
    [InlineData("http://loopback:0", true, "only on a loopback address")] // Uri calls it localhost; Kestrel binds every interface
    [InlineData("http://127.0.0.1:0;http://[::]:0", true, "only on a loopback address")]
    [InlineData("http://localhost.:0", false, "needs TLS")]
    public void Listening_off_loopback_without_tls_or_insecurely_is_refused_at_start_naming_the_flag(string urls, bool insecure, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => ControllerHost.Build(Options(urls, insecure)));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_dir, "data")), "a refused start must not create anything");
    }

    [Fact]
    public async Task The_real_controller_refuses_to_start_off_loopback_and_says_which_flag_to_add()
    {
        // Started by its path: the tests' development flag is not added.
        await using var controller = RealProcess.Start(RealProcess.ExecutablePath("smp-controller"), "--urls", $"http://0.0.0.0:{RealProcess.FreePort()}", "--data", Path.Combine(_dir, "data"));
        Assert.Equal(2, await controller.ExitCodeAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("needs TLS", controller.Stderr, StringComparison.Ordinal);
        Assert.Contains("--tls-cert", controller.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tls_with_the_chairs_certificate_pinned_works_and_with_another_ca_is_refused()
    {
        var chair = ChairCertificate.Create([], 30);
        var other = ChairCertificate.Create([], 30);
        await File.WriteAllTextAsync(Path.Combine(_dir, "chair.crt"), chair.CertificatePem);
        await File.WriteAllTextAsync(Path.Combine(_dir, "chair.key"), chair.KeyPem);
        await File.WriteAllTextAsync(Path.Combine(_dir, "other.crt"), other.CertificatePem);
        var app = ControllerHost.Build(Options("https://127.0.0.1:0") with { TlsCertificatePath = Path.Combine(_dir, "chair.crt"), TlsKeyPath = Path.Combine(_dir, "chair.key") });
        await app.StartAsync().WaitAsync(ControllerFixture.Timeout);
        try
        {
            var store = app.Services.GetRequiredService<LedgerStore>();
            var token = UserAccounts.Add(store, "nurse", Role.Operator, "test").Token;
            app.Services.GetRequiredService<UserDirectory>().Reload();
            var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
            var env = new Dictionary<string, string?> { ["SMP_TOKEN"] = token, ["SMP_CA"] = Path.Combine(_dir, "chair.crt") };

            using (var pinned = ControllerConnection.Create(address, ControllerAccess.Resolve(null, null, n => env.GetValueOrDefault(n))))
            {
                var me = await pinned.Access.WhoAmIAsync(new WhoAmIRequest(), deadline: pinned.Deadline());
                Assert.Equal(("nurse", "operator"), (me.Name, me.Role));
                Assert.False((await pinned.Safety.EmergencyStopAsync(new EmergencyStopRequest { Reason = "tls drill" }, deadline: pinned.Deadline())).StopError.Length > 0);
            }

            env["SMP_CA"] = Path.Combine(_dir, "other.crt");
            using var wrongCa = ControllerConnection.Create(address, ControllerAccess.Resolve(null, null, n => env.GetValueOrDefault(n)));
            var refused = await Assert.ThrowsAsync<RpcException>(async () => await wrongCa.Access.WhoAmIAsync(new WhoAmIRequest(), deadline: wrongCa.Deadline()));
            // The handshake fails in the client: grpc-dotnet reports it as INTERNAL (or UNAVAILABLE), naming SSL.
            Assert.True(refused.StatusCode is StatusCode.Internal or StatusCode.Unavailable, refused.Status.ToString());
            Assert.Contains("SSL", refused.Status.Detail + refused.Status.DebugException, StringComparison.Ordinal);

            // Plain http to a TLS port is no way round it either.
            using var plain = GrpcChannel.ForAddress(new UriBuilder(address) { Scheme = "http" }.Uri);
            var http = await Assert.ThrowsAsync<RpcException>(async () => await new AccessService.AccessServiceClient(plain).WhoAmIAsync(new WhoAmIRequest(), deadline: DateTime.UtcNow.AddSeconds(10)));
            Assert.NotEqual(StatusCode.OK, http.StatusCode);
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_revoked_token_is_refused_at_once_and_the_audit_log_keeps_who_did_what()
    {
        await using var controller = await ControllerFixture.StartAsync(configure: o => o with { InsecureLoopback = false });
        var store = controller.Services.GetRequiredService<LedgerStore>();
        var adminToken = UserAccounts.Add(store, "admin", Role.Admin, "test").Token;
        controller.Services.GetRequiredService<UserDirectory>().Reload();
        var env = new Dictionary<string, string?> { ["SMP_TOKEN"] = adminToken };
        using var admin = ControllerConnection.Create(new Uri(controller.Address), ControllerAccess.Resolve(null, null, n => env.GetValueOrDefault(n)));

        var added = await admin.Access.AddUserAsync(new AddUserRequest { Name = "sam", Role = "operator" }, deadline: admin.Deadline());
        Assert.StartsWith(AccessTokens.Prefix, added.Token, StringComparison.Ordinal);
        Assert.DoesNotContain(store.ListUsers(), u => u.TokenSha256.Contains(added.Token, StringComparison.Ordinal));
        env["SMP_TOKEN"] = added.Token;
        using var sam = ControllerConnection.Create(new Uri(controller.Address), ControllerAccess.Resolve(null, null, n => env.GetValueOrDefault(n)));
        await sam.Machine.HomeAsync(new HomeRequest(), deadline: sam.Deadline(ControllerFixture.Timeout));
        await sam.Machine.JogAsync(new JogRequest { DxMm = 1 }, deadline: sam.Deadline());

        // A 1 MB operator name is refused by its length, and nothing of it is kept.
        var huge = new string('x', 1024 * 1024);
        var tooLong = await Assert.ThrowsAsync<RpcException>(async () => await sam.Sessions.ResolveDotsAsync(new ResolveDotsRequest { SessionId = "s-none", AllInDoubt = true, Operator = huge }, deadline: sam.Deadline()));
        Assert.Equal(StatusCode.InvalidArgument, tooLong.StatusCode);
        Assert.Contains("operator is 1048576 characters long", tooLong.Status.Detail, StringComparison.Ordinal);

        await admin.Access.RevokeUserAsync(new RevokeUserRequest { Name = "sam" }, deadline: admin.Deadline());
        var revoked = await Assert.ThrowsAsync<RpcException>(async () => await sam.Machine.GetStatusAsync(new GetMachineStatusRequest(), deadline: sam.Deadline()));
        Assert.Equal(StatusCode.Unauthenticated, revoked.StatusCode);
        Assert.Contains("unknown or revoked token", revoked.Status.Detail, StringComparison.Ordinal);
        var stop = await Assert.ThrowsAsync<RpcException>(async () => await sam.Safety.EmergencyStopAsync(new EmergencyStopRequest(), deadline: sam.Deadline()));
        Assert.Equal(StatusCode.Unauthenticated, stop.StatusCode);

        var audit = await admin.Access.ListAuditAsync(new ListAuditRequest(), deadline: admin.Deadline());
        var calls = audit.Entries.Select(e => (e.Identity, e.Rpc.Split('/')[^1], e.Result.Split(':')[0])).ToList();
        Assert.Equal(
            [("admin", "AddUser", "OK"), ("sam", "Home", "OK"), ("sam", "Jog", "OK"), ("admin", "RevokeUser", "OK")],
            calls);
        Assert.Contains("\"dxMm\": 1", audit.Entries.Single(e => e.Rpc.EndsWith("/Jog", StringComparison.Ordinal)).Arguments, StringComparison.Ordinal);
        Assert.All(audit.Entries, e => Assert.True(e.Arguments.Length <= 4100));
        Assert.DoesNotContain(audit.Entries, e => e.Arguments.Contains(added.Token, StringComparison.Ordinal));
        // The operator may read the audit log; the observer may not.
        Assert.Equal("operator", (await admin.Access.ListUsersAsync(new ListUsersRequest(), deadline: admin.Deadline())).Users.Single(u => u.Name == "sam").Role);
    }

    [Fact]
    public void A_token_revoked_by_another_process_on_the_same_store_is_refused_after_one_poll()
    {
        var clock = new FakeTimeProvider();
        var path = Path.Combine(_dir, "smp.db");
        using var controllerStore = new LedgerStore(path, clock);
        using var directory = new UserDirectory(controllerStore, clock);
        string token;
        using (var chairStore = new LedgerStore(path, clock)) token = UserAccounts.Add(chairStore, "kim", Role.Engineer, "smp-controller user add").Token;
        Assert.Null(directory.Authenticate(token)); // not seen yet: no poll has run
        clock.Advance(UserDirectory.PollInterval);
        Assert.Equal(new CallerIdentity("kim", Role.Engineer), directory.Authenticate(token));
        using (var chairStore = new LedgerStore(path, clock)) Assert.True(chairStore.RevokeUser("kim"));
        clock.Advance(UserDirectory.PollInterval);
        Assert.Null(directory.Authenticate(token));
        Assert.Null(directory.Authenticate("smp_" + new string('A', 43)));
        // An active name is taken; a revoked one gets a new token (and role), and the old token stays refused.
        UserAccounts.Add(controllerStore, "ida", Role.Admin, "test");
        Assert.Throws<InvalidOperationException>(() => UserAccounts.Add(controllerStore, "ida", Role.Operator, "test"));
        var again = UserAccounts.Add(controllerStore, "kim", Role.Observer, "test").Token;
        directory.Reload();
        Assert.Null(directory.Authenticate(token));
        Assert.Equal(new CallerIdentity("kim", Role.Observer), directory.Authenticate(again));
        Assert.Null(directory.Authenticate(new string('x', 10_000)));
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void The_cli_reads_its_token_only_from_the_environment_or_a_file_only_its_owner_can_read()
    {
        var file = Path.Combine(_dir, "token");
        File.WriteAllText(file, "smp_secret\n");
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        var e = Assert.Throws<CliException>(() => ControllerAccess.Resolve(file, null, _ => null));
        Assert.Contains($"chmod 600 {file}", e.Message, StringComparison.Ordinal);
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Assert.Equal("smp_secret", ControllerAccess.Resolve(file, null, n => n == "SMP_TOKEN" ? "smp_from_env" : null).Token);
        Assert.Equal("smp_from_env", ControllerAccess.Resolve(null, null, n => n == "SMP_TOKEN" ? "smp_from_env" : null).Token);
        Assert.Null(ControllerAccess.Resolve(null, null, _ => null).Token);
    }
}

/// <summary>A chair set up and used as people would, with the real processes: users added on the chair, then the console with their tokens.</summary>
public sealed class AccessEndToEndTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    private static async Task<string> AddUserAsync(string data, string name, string role)
    {
        await using var add = RealProcess.Start("smp-controller", "user", "add", name, "--role", role, "--data", data);
        Assert.Equal(0, await add.ExitCodeAsync(Timeout));
        return add.Stdout.Trim();
    }

    [Fact]
    public async Task Users_added_on_the_chair_sign_in_with_their_tokens_and_their_roles_decide_and_the_audit_says_who()
    {
        var data = Directory.CreateTempSubdirectory("smp-e2e-access-").FullName;
        try
        {
            var operatorToken = await AddUserAsync(data, "olga", "operator");
            var observerToken = await AddUserAsync(data, "otto", "observer");
            Assert.StartsWith(AccessTokens.Prefix, operatorToken, StringComparison.Ordinal);
            var url = $"http://127.0.0.1:{RealProcess.FreePort()}";
            // By its path: no development flag. Loopback without TLS, tokens required.
            await using var controller = RealProcess.Start(RealProcess.ExecutablePath("smp-controller"), "--urls", url, "--data", data, "--camera", "none", "--time-scale", "200");
            await controller.WaitForLineAsync(l => l.Contains("Now listening", StringComparison.Ordinal), Timeout);
            Assert.DoesNotContain("INSECURE", controller.Stderr, StringComparison.Ordinal);

            await using (var anonymous = RealProcess.Start("smp", "machine", "status", "--controller", url))
            {
                Assert.Equal(1, await anonymous.ExitCodeAsync(Timeout));
                Assert.Contains("no access token", anonymous.Stderr, StringComparison.Ordinal);
            }
            await using (var observerHome = RealProcess.StartWith(new Dictionary<string, string> { ["SMP_TOKEN"] = observerToken }, "smp", "machine", "home", "--controller", url))
            {
                Assert.Equal(1, await observerHome.ExitCodeAsync(Timeout));
                Assert.Contains("otto (observer) may not call /smprobot.v1.MachineService/Home: it needs the operator role", observerHome.Stderr, StringComparison.Ordinal);
            }
            await using (var operatorHome = RealProcess.StartWith(new Dictionary<string, string> { ["SMP_TOKEN"] = operatorToken }, "smp", "machine", "home", "--controller", url))
            {
                Assert.Equal(0, await operatorHome.ExitCodeAsync(Timeout));
            }
            await using (var observerStop = RealProcess.StartWith(new Dictionary<string, string> { ["SMP_TOKEN"] = observerToken }, "smp", "estop", "--controller", url))
            {
                Assert.Equal(0, await observerStop.ExitCodeAsync(Timeout));
                Assert.Contains("LATCHED", observerStop.Stdout, StringComparison.Ordinal);
            }
            await using (var audit = RealProcess.StartWith(new Dictionary<string, string> { ["SMP_TOKEN"] = operatorToken }, "smp", "audit", "--json", "--controller", url))
            {
                Assert.Equal(0, await audit.ExitCodeAsync(Timeout));
                var entries = System.Text.Json.JsonDocument.Parse(audit.Stdout).RootElement.GetProperty("entries").EnumerateArray()
                    .Select(e => (e.GetProperty("identity").GetString(), e.GetProperty("rpc").GetString()!.Split('/')[^1], e.GetProperty("result").GetString()!.Split(':')[0])).ToList();
                Assert.Equal([("otto", "Home", "PermissionDenied"), ("olga", "Home", "OK"), ("otto", "EmergencyStop", "OK")], entries);
            }
            controller.Terminate();
            Assert.Equal(0, await controller.ExitCodeAsync(Timeout));
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }
}
