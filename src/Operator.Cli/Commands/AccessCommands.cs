using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli.Commands;

/// <summary><c>smp user add|list|revoke</c>, <c>smp whoami</c> and <c>smp audit</c>.</summary>
internal static class AccessCommands
{
    public static IEnumerable<Command> Build(CliCommands app)
    {
        var user = new Command("user", "Users of the controller and their roles (admin only; on the chair itself: smp-controller user …)");

        var name = new Argument<string>("NAME") { Description = "The user's name" };
        var role = new Option<string>("--role") { Description = "observer, operator, engineer or admin", Required = true };
        var add = new Command("add", "Adds a user and prints its access token, once: keep it in a file only its user can read (chmod 600)") { name, role };
        app.Bind(add, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            var reply = await conn.Access.AddUserAsync(new AddUserRequest { Name = parse.GetValue(name)!, Role = parse.GetValue(role)! }, deadline: conn.Deadline(), cancellationToken: ct);
            ctx.Info($"user {reply.User.Name} ({reply.User.Role}) added; its token, shown this once:");
            ctx.Result(reply.Token, new JsonObject { ["name"] = reply.User.Name, ["role"] = reply.User.Role, ["token"] = reply.Token });
            return ExitCodes.Success;
        });

        var revokeName = new Argument<string>("NAME") { Description = "The user whose token stops working at once" };
        var revoke = new Command("revoke", "Revokes a user's token: its next call is refused") { revokeName };
        app.Bind(revoke, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            var u = await conn.Access.RevokeUserAsync(new RevokeUserRequest { Name = parse.GetValue(revokeName)! }, deadline: conn.Deadline(), cancellationToken: ct);
            ctx.Result($"user {u.Name} revoked at {u.RevokedAt}", new JsonObject { ["name"] = u.Name, ["revokedAt"] = u.RevokedAt });
            return ExitCodes.Success;
        });

        var list = new Command("list", "Lists the users (never their tokens)");
        app.Bind(list, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            var reply = await conn.Access.ListUsersAsync(new ListUsersRequest(), deadline: conn.Deadline(), cancellationToken: ct);
            var lines = reply.Users.Select(u => string.Create(CultureInfo.InvariantCulture, $"{u.Name,-24} {u.Role,-9} added {u.CreatedAt} by {u.CreatedBy}{(u.RevokedAt.Length > 0 ? "; REVOKED " + u.RevokedAt : "")}"));
            var json = new JsonArray([.. reply.Users.Select(u => (JsonNode)new JsonObject { ["name"] = u.Name, ["role"] = u.Role, ["createdAt"] = u.CreatedAt, ["createdBy"] = u.CreatedBy, ["revokedAt"] = u.RevokedAt })]);
            ctx.Result(string.Join(Environment.NewLine, lines), new JsonObject { ["users"] = json });
            return ExitCodes.Success;
        });
        user.Subcommands.Add(add);
        user.Subcommands.Add(revoke);
        user.Subcommands.Add(list);

        var whoami = new Command("whoami", "Who the controller takes you for (your token's user and role)");
        app.Bind(whoami, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            var u = await conn.Access.WhoAmIAsync(new WhoAmIRequest(), deadline: conn.Deadline(), cancellationToken: ct);
            ctx.Result($"{u.Name} ({u.Role})", new JsonObject { ["name"] = u.Name, ["role"] = u.Role });
            return ExitCodes.Success;
        });

        var since = new Option<string?>("--since") { Description = "Only calls at or after this time (ISO 8601, e.g. 2026-12-05T09:00Z)", HelpName = "TIME" };
        var session = new Option<string?>("--session") { Description = "Only calls naming this session", HelpName = "ID" };
        var limit = new Option<int>("--limit") { Description = "Most entries (the newest)", DefaultValueFactory = _ => 200 };
        var audit = new Command("audit", "The audit log: every state-changing call with who made it, its arguments, its result and when (operator and above)") { since, session, limit };
        app.Bind(audit, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            var reply = await conn.Access.ListAuditAsync(new ListAuditRequest { Since = parse.GetValue(since) ?? "", SessionId = parse.GetValue(session) ?? "", Limit = parse.GetValue(limit) }, deadline: conn.Deadline(), cancellationToken: ct);
            var lines = reply.Entries.Select(e => string.Create(CultureInfo.InvariantCulture,
                $"{e.At}  {e.Identity} ({e.Role})  {e.Rpc.TrimStart('/')}{(e.SessionId.Length > 0 ? "  " + e.SessionId : "")}  {e.Result}{Environment.NewLine}    {e.Arguments}"));
            var json = new JsonArray([.. reply.Entries.Select(e => (JsonNode)new JsonObject
            {
                ["id"] = e.Id, ["at"] = e.At, ["identity"] = e.Identity, ["role"] = e.Role, ["rpc"] = e.Rpc, ["sessionId"] = e.SessionId, ["arguments"] = e.Arguments, ["result"] = e.Result,
            })]);
            ctx.Result(reply.Entries.Count == 0 ? "no audited calls" : string.Join(Environment.NewLine, lines), new JsonObject { ["entries"] = json });
            return ExitCodes.Success;
        });
        return [user, whoami, audit];
    }
}
