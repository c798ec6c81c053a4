using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using SmpRobot.Controller.Security;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Safety;

namespace SmpRobot.Bench;

/// <summary>
/// A real controller host on a free loopback port with its gRPC clients (the e-stop on its own
/// channel, as in smp) and a live operator heartbeat: what every controller benchmark starts from.
/// </summary>
internal sealed class BenchRig : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private readonly WebApplication _app;
    private readonly GrpcChannel _channel;
    private readonly GrpcChannel _safetyChannel;
    private readonly CancellationTokenSource _heartbeatStop = new();
    private readonly Task _beats;
    private readonly Task _replies;

    private BenchRig(WebApplication app, string address, bool heartbeat, Access? access)
    {
        _app = app;
        Address = address;
        _access = access;
        _channel = NewChannel();
        _safetyChannel = NewChannel();
        Sessions = new SessionService.SessionServiceClient(_channel);
        Machine = new MachineService.MachineServiceClient(_channel);
        Safety = new SafetyService.SafetyServiceClient(_safetyChannel);
        Calibration = new CalibrationService.CalibrationServiceClient(_channel);
        if (!heartbeat)
        {
            _beats = _replies = Task.CompletedTask;
            return;
        }
        var beating = Safety.OperatorHeartbeat(cancellationToken: _heartbeatStop.Token);
        // The controller answers every beat: read the answers, or HTTP/2 flow control eventually stalls
        // the stream and the dead-man (rightly) holds the session.
        _replies = Task.Run(async () =>
        {
            try
            {
                while (await beating.ResponseStream.MoveNext(_heartbeatStop.Token))
                {
                }
            }
            catch (Exception e) when (e is OperationCanceledException or Grpc.Core.RpcException)
            {
            }
        });
        _beats = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
            ulong sequence = 0;
            try
            {
                do
                {
                    // Strictly increasing, or the controller ignores the beat.
                    await beating.RequestStream.WriteAsync(new Heartbeat { Operator = "bench", Sequence = ++sequence });
                }
                while (await timer.WaitForNextTickAsync(_heartbeatStop.Token));
            }
            catch (Exception e) when (e is OperationCanceledException or Grpc.Core.RpcException)
            {
            }
            finally
            {
                beating.Dispose();
            }
        });
    }

    /// <summary>A secure rig's chair certificate (its own CA) and the token of its admin user.</summary>
    private sealed record Access(X509Certificate2 Chair, string Token, string Directory);

    private readonly Access? _access;

    /// <summary>SMP_BENCH_DEV_LOOPBACK=1: the e-stop benches run in the development loopback mode (no TLS, no tokens), to compare.</summary>
    public static bool DevelopmentLoopbackAsked => Environment.GetEnvironmentVariable("SMP_BENCH_DEV_LOOPBACK") == "1";

    /// <summary>True when the controller serves TLS and asks for tokens (<see cref="StartAsync"/> with secure).</summary>
    public bool Tls => _access is not null;

    /// <summary>
    /// A new channel (its own HTTP/2 connection) to the controller: for a secure rig over TLS trusting only the chair's
    /// certificate, with the bench user's token on every call.
    /// </summary>
    public GrpcChannel NewChannel()
    {
        if (_access is not { } access) return GrpcChannel.ForAddress(Address);
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
        {
            if (certificate is null) return false;
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(access.Chair);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            using var presented = new X509Certificate2(certificate);
            return chain.Build(presented);
        };
        var header = "Bearer " + access.Token;
        var token = CallCredentials.FromInterceptor((_, metadata) =>
        {
            metadata.Add("authorization", header);
            return Task.CompletedTask;
        });
        return GrpcChannel.ForAddress(Address, new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true, Credentials = ChannelCredentials.Create(new SslCredentials(), token) });
    }

    /// <summary>The channel of the session, machine and calibration clients, for other services' clients.</summary>
    public GrpcChannel Channel => _channel;

    /// <summary>The controller's address (http://127.0.0.1:PORT).</summary>
    public string Address { get; }

    public SessionService.SessionServiceClient Sessions { get; }
    public MachineService.MachineServiceClient Machine { get; }
    public SafetyService.SafetyServiceClient Safety { get; }
    public CalibrationService.CalibrationServiceClient Calibration { get; }
    public SafetySupervisor Supervisor => _app.Services.GetRequiredService<SafetySupervisor>();
    public IServiceProvider Services => _app.Services;

    /// <summary>hardware/profiles/NAME.json of this checkout.</summary>
    public static string ProfilePath(string name) => Path.Combine(HardwarePaths.HardwareDirectory(), "profiles", name + ".json");

    /// <summary>Starts a controller (logging errors only) with the given gantry options.</summary>
    /// <param name="heartbeat">Keep an operator heartbeat going (off for benches that play the console themselves).</param>
    /// <param name="secure">
    /// Serve as a chair does: TLS with a certificate made for the run (smp-controller cert create's) and tokens (an admin
    /// user made for the run); otherwise the development loopback mode.
    /// </param>
    public static async Task<BenchRig> StartAsync(ControllerOptions options, bool heartbeat = true, bool secure = false)
    {
        Access? access = null;
        var configured = options with { Urls = "http://127.0.0.1:0", MinimumLogLevel = LogLevel.Error, InsecureLoopback = true };
        if (secure)
        {
            var dir = System.IO.Directory.CreateTempSubdirectory("smp-bench-tls-").FullName;
            var chair = ChairCertificate.Create([], 2);
            await File.WriteAllTextAsync(Path.Combine(dir, "chair.crt"), chair.CertificatePem);
            await File.WriteAllTextAsync(Path.Combine(dir, "chair.key"), chair.KeyPem);
            configured = options with
            {
                Urls = "https://127.0.0.1:0",
                MinimumLogLevel = LogLevel.Error,
                InsecureLoopback = false,
                TlsCertificatePath = Path.Combine(dir, "chair.crt"),
                TlsKeyPath = Path.Combine(dir, "chair.key"),
            };
#pragma warning disable CA2000 // the rig owns it and disposes it with itself
            access = new Access(X509Certificate2.CreateFromPem(chair.CertificatePem), "", dir);
#pragma warning restore CA2000
        }
        var app = ControllerHost.Build(configured);
        if (access is not null)
        {
            var token = UserAccounts.Add(app.Services.GetRequiredService<Controller.Storage.LedgerStore>(), "bench", Role.Admin, "bench").Token;
            app.Services.GetRequiredService<UserDirectory>().Reload();
            access = access with { Token = token };
        }
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new BenchRig(app, address, heartbeat, access);
    }

    /// <summary>
    /// E-stop latency while a session streams: each trial waits for one more placed dot, calls the
    /// EmergencyStop RPC, and measures from its arrival at the controller's HTTP pipeline to the
    /// feed-hold byte reaching <paramref name="gantry"/>; then resets, skips the dot in doubt, re-homes
    /// if needed and resumes. Returns the latencies, ms.
    /// </summary>
    public async Task<List<double>> EstopTrialsAsync(SimulatedGantry gantry, int trials, string label)
    {
        long holdByteTimestamp = 0;
        gantry.RealtimeByteReceived += (_, e) =>
        {
            if (e.Command == (byte)GrblRealtime.FeedHold) Interlocked.CompareExchange(ref holdByteTimestamp, e.ArrivedTimestamp, 0);
        };
        await Machine.HomeAsync(new HomeRequest());
        var session = await Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = Controller.Plans.DemoPlanGenerator.Generate(1500, seed: 1) });
        await Sessions.StartAsync(new SessionRef { SessionId = session.Id });
        var latencies = new List<double>(trials);
        for (var trial = 0; trial < trials; trial++)
        {
            var current = await Sessions.GetAsync(new SessionRef { SessionId = session.Id });
            await WaitAsync(session.Id, s => s.Dots.Placed >= current.Dots.Placed + 1, mustKeepRunning: true);
            Interlocked.Exchange(ref holdByteTimestamp, 0);
            await Safety.EmergencyStopAsync(new EmergencyStopRequest { Source = "bench", Reason = $"trial {trial}" }, deadline: DateTime.UtcNow.Add(Timeout));
            var hold = Interlocked.Read(ref holdByteTimestamp);
            if (hold == 0) throw new InvalidOperationException($"trial {trial}: no feed-hold byte reached the board");
            latencies.Add(TimeProvider.System.GetElapsedTime(Supervisor.State.ArrivedTimestamp, hold).TotalMilliseconds);

            await Safety.ResetEmergencyStopAsync(new ResetEmergencyStopRequest { Source = "bench" });
            var stopped = await WaitAsync(session.Id, s => s.State == SessionState.EmergencyStopped, mustKeepRunning: false);
            if (stopped.Dots.InDoubt > 0)
            {
                await Sessions.ResolveDotsAsync(new ResolveDotsRequest { SessionId = session.Id, AllInDoubt = true, Resolution = DotResolution.Skip, Operator = "bench" });
            }
            if (!(await Machine.GetStatusAsync(new GetMachineStatusRequest())).Homed) await Machine.HomeAsync(new HomeRequest());
            await Sessions.ResumeAsync(new SessionRef { SessionId = session.Id });
            if (trial % 20 == 19) await Console.Error.WriteLineAsync($"{label}: {trial + 1}/{trials} trials, median so far {Stats.Median(latencies):0.000} ms");
        }
        await Sessions.AbortAsync(new SessionRef { SessionId = session.Id });
        return latencies;
    }

    /// <summary>Follows a session until <paramref name="until"/> holds (or, with <paramref name="mustKeepRunning"/>, fails when it stops running).</summary>
    public async Task<Session> WaitAsync(string sessionId, Func<Session, bool> until, bool mustKeepRunning, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? Timeout);
        using var watch = Sessions.Watch(new WatchSessionRequest { SessionId = sessionId }, cancellationToken: cts.Token);
        while (await watch.ResponseStream.MoveNext(cts.Token))
        {
            var s = watch.ResponseStream.Current.Session;
            if (until(s)) return s;
            if (mustKeepRunning && s.State is not (SessionState.Running or SessionState.Pausing)) throw new InvalidOperationException($"session {sessionId} is {s.State}: {s.Reason}");
        }
        throw new TimeoutException($"session {sessionId} never reached the expected state");
    }

    public async ValueTask DisposeAsync()
    {
        await _heartbeatStop.CancelAsync();
        await _beats;
        await _replies;
        _channel.Dispose();
        _safetyChannel.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        _heartbeatStop.Dispose();
        if (_access is not null)
        {
            _access.Chair.Dispose();
            System.IO.Directory.Delete(_access.Directory, recursive: true);
        }
    }
}
