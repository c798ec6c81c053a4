using System.CommandLine;
using System.Text.Json.Nodes;
using Grpc.Core;
using SmpRobot.Operator.Cli.Commands;

namespace SmpRobot.Operator.Cli;

/// <summary>
/// The <c>smp</c> command line. <see cref="RunAsync(string[], TextWriter, TextWriter, CancellationToken)"/> is the
/// whole program behind Main, usable in tests: it parses, runs the command and returns the exit code
/// (<see cref="ExitCodes"/>), writing results to <c>stdout</c> and messages to <c>stderr</c>; it never throws for user
/// errors and never prints a stack trace.
/// </summary>
internal static class CliApp
{
    /// <summary>Controller address when neither --controller nor SMP_CONTROLLER is given.</summary>
    public const string DefaultControllerUrl = "http://127.0.0.1:50051";

    /// <summary>Runs <c>smp</c> non-interactively (no terminal, no keys, no Ctrl+C hook).</summary>
    public static Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct) =>
        RunAsync(args, stdout, stderr, CliHost.NonInteractive(), ct);

    /// <summary>Runs <c>smp</c> with an explicit host (console, environment, controller connection factory).</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CliHost host, CancellationToken ct)
    {
        var commands = new CliCommands(stdout, stderr, host);
        var parse = commands.Root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            var message = string.Join("; ", parse.Errors.Select(e => e.Message));
            await stderr.WriteLineAsync("smp: " + message).ConfigureAwait(false);
            await stderr.WriteLineAsync("Run 'smp --help' (or 'smp COMMAND --help') for usage.").ConfigureAwait(false);
            if (args.Contains("--json")) JsonOutput.Write(stdout, JsonOutput.Error(message, ExitCodes.Usage));
            return ExitCodes.Usage;
        }
        try
        {
            return await parse.InvokeAsync(new InvocationConfiguration
            {
                Output = stdout,
                Error = stderr,
                // Ctrl+C is ours: an emergency stop while a session runs, never a silent process exit.
                ProcessTerminationTimeout = null,
                EnableDefaultExceptionHandler = false,
            }, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Last resort (commands map their own errors): one line, no stack trace.
            await stderr.WriteLineAsync("smp: internal error: " + e.Message).ConfigureAwait(false);
            return ExitCodes.Failure;
        }
    }
}

/// <summary>The command tree and the glue from parsed values to command code.</summary>
internal sealed class CliCommands
{
    private readonly TextWriter stdout;
    private readonly TextWriter stderr;
    private readonly CliHost host;

    public CliCommands(TextWriter stdout, TextWriter stderr, CliHost host)
    {
        this.stdout = stdout;
        this.stderr = stderr;
        this.host = host;
        Json = new Option<bool>("--json") { Description = "Print exactly one JSON object on stdout at the end (messages go to stderr)", Recursive = true };
        Controller = new Option<string?>("--controller")
        {
            Description = "Controller URL (default: $SMP_CONTROLLER, else " + CliApp.DefaultControllerUrl + ")",
            HelpName = "URL",
            Recursive = true,
        };
        TokenFile = new Option<string?>("--token-file")
        {
            Description = "File holding your access token (readable by you only: chmod 600). Default: $SMP_TOKEN. Never give the token itself on the command line",
            HelpName = "FILE",
            Recursive = true,
        };
        Ca = new Option<string?>("--ca")
        {
            Description = "CA certificate (PEM) to trust for an https:// controller, or the chair's own certificate to pin it (default: $SMP_CA, else the system's trust store)",
            HelpName = "FILE",
            Recursive = true,
        };
        Root = new RootCommand("smp: operator console of the SmpRobot scalp-micropigmentation gantry. "
            + "E-stop at any time: 'smp estop' from any terminal, or e / Esc / Ctrl+C in a live view.");
        Root.Options.Add(Json);
        Root.Options.Add(Controller);
        Root.Options.Add(TokenFile);
        Root.Options.Add(Ca);
        Root.Subcommands.Add(DemoCommand.Build(this));
        Root.Subcommands.Add(RunCommand.Build(this));
        Root.Subcommands.Add(WatchCommand.Build(this));
        Root.Subcommands.Add(EstopCommand.Build(this));
        Root.Subcommands.Add(PlanCommand.Build(this));
        Root.Subcommands.Add(DesignCommand.Build(this));
        Root.Subcommands.Add(SessionCommands.BuildList(this));
        Root.Subcommands.Add(SessionCommands.Build(this));
        Root.Subcommands.Add(MachineCommand.Build(this));
        Root.Subcommands.Add(BoardCommand.Build(this));
        Root.Subcommands.Add(CameraCommand.Build(this));
        Root.Subcommands.Add(CalibrateCommand.Build(this));
        Root.Subcommands.Add(SurfaceCommand.Build(this));
        Root.Subcommands.Add(TreatmentCommand.Build(this));
        Root.Subcommands.Add(ReportCommand.Build(this));
        foreach (var command in AccessCommands.Build(this)) Root.Subcommands.Add(command);
    }

    public RootCommand Root { get; }

    public Option<bool> Json { get; }

    public Option<string?> Controller { get; }

    public Option<string?> TokenFile { get; }

    public Option<string?> Ca { get; }

    /// <summary>Sets <paramref name="command"/>'s action with uniform error handling and output discipline.</summary>
    public void Bind(Command command, Func<CommandContext, ParseResult, CancellationToken, Task<int>> body)
    {
        command.SetAction(async (parse, ct) =>
        {
            var json = parse.GetValue(Json);
            Uri? controller = null;
            CommandContext? ctx = null;
            try
            {
                controller = ResolveController(parse.GetValue(Controller));
                ctx = new CommandContext(stdout, stderr, host, json, controller)
                {
                    Access = ControllerAccess.Resolve(parse.GetValue(TokenFile), parse.GetValue(Ca), host.GetEnvironmentVariable),
                };
                return await body(ctx, parse, ct).ConfigureAwait(false);
            }
            catch (CliException e)
            {
                return Fail(ctx, json, e.Message, e.ExitCode, e.Details, e.AlreadyReported);
            }
            catch (RpcException e)
            {
                return Fail(ctx, json, CommandContext.DescribeRpcError(e, controller!), ExitCodes.ForStatus(e.StatusCode),
                    new JsonObject { ["status"] = e.StatusCode.ToString() }, false);
            }
            catch (OperationCanceledException)
            {
                return Fail(ctx, json, "cancelled", ExitCodes.Failure, null, false);
            }
        });
    }

    private int Fail(CommandContext? ctx, bool json, string message, int exitCode, JsonObject? details, bool alreadyReported)
    {
        if (!alreadyReported || json) stderr.WriteLine("smp: " + message);
        if (json && ctx?.JsonWritten != true) JsonOutput.Write(stdout, JsonOutput.Error(message, exitCode, details));
        return exitCode;
    }

    private Uri ResolveController(string? option)
    {
        var text = option;
        if (string.IsNullOrWhiteSpace(text)) text = host.GetEnvironmentVariable("SMP_CONTROLLER");
        if (string.IsNullOrWhiteSpace(text)) text = CliApp.DefaultControllerUrl;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new CliException(ExitCodes.Usage, $"bad controller URL '{text}': expected http://HOST:PORT or https://HOST:PORT");
        }
        return uri;
    }

    /// <summary>The --controller argument to repeat in suggested commands; null for the default address.</summary>
    public static string? ControllerArg(CommandContext ctx) =>
        ctx.Controller.ToString().TrimEnd('/') == CliApp.DefaultControllerUrl ? null : "--controller " + ctx.Controller.ToString().TrimEnd('/');
}
