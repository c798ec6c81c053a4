using System.Globalization;
using Grpc.Core;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Security;
using SmpRobot.Controller.Storage;

namespace SmpRobot.Controller.Services;

/// <summary>Thin: users and their tokens (<see cref="UserAccounts"/>), and the audit log.</summary>
internal sealed class AccessGrpcService(LedgerStore store, UserDirectory users) : AccessService.AccessServiceBase
{
    /// <summary>Most audit entries one call returns.</summary>
    public const int MaxAuditEntries = 10_000;

    public override Task<AddUserReply> AddUser(AddUserRequest request, ServerCallContext context)
    {
        var role = ParseRole(request.Role);
        var by = Caller(context).Name;
        try
        {
            var (user, token) = UserAccounts.Add(store, request.Name, role, by);
            users.Reload();
            return Task.FromResult(new AddUserReply { User = ToProto(user), Token = token });
        }
        catch (ArgumentException e)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, e.Message));
        }
        catch (InvalidOperationException e)
        {
            throw new RpcException(new Status(StatusCode.AlreadyExists, e.Message));
        }
    }

    public override Task<User> RevokeUser(RevokeUserRequest request, ServerCallContext context)
    {
        var name = Bounded.Text(request.Name, "name", Bounded.MaxNameLength);
        if (!store.RevokeUser(name)) throw new RpcException(new Status(StatusCode.NotFound, $"no active user '{name}'"));
        users.Reload();
        return Task.FromResult(ToProto(store.ListUsers().Single(u => u.Name == name)));
    }

    public override Task<ListUsersReply> ListUsers(ListUsersRequest request, ServerCallContext context)
    {
        var reply = new ListUsersReply();
        reply.Users.Add(store.ListUsers().Select(ToProto));
        return Task.FromResult(reply);
    }

    public override Task<ListAuditReply> ListAudit(ListAuditRequest request, ServerCallContext context)
    {
        DateTimeOffset? since = null;
        if (request.Since.Length > 0)
        {
            if (!DateTimeOffset.TryParse(Bounded.Text(request.Since, "since", Bounded.MaxIdLength), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed))
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"since '{request.Since}' is not a time (ISO 8601, e.g. 2026-12-05T09:00:00Z)"));
            }
            since = parsed;
        }
        if (request.Limit < 0) throw new RpcException(new Status(StatusCode.InvalidArgument, "limit must not be negative"));
        var limit = request.Limit == 0 ? 1000 : Math.Min(request.Limit, MaxAuditEntries);
        var sessionId = request.SessionId.Length == 0 ? null : Bounded.Text(request.SessionId, "session_id", Bounded.MaxIdLength);
        var reply = new ListAuditReply();
        reply.Entries.Add(store.ListCallAudit(since, sessionId, limit).Select(e => new AuditEntry
        {
            Id = e.Id,
            At = e.At.ToString("O", CultureInfo.InvariantCulture),
            Identity = e.Identity,
            Role = e.Role,
            Rpc = e.Rpc,
            SessionId = e.SessionId ?? "",
            Arguments = e.Arguments,
            Result = e.Result,
        }));
        return Task.FromResult(reply);
    }

    public override Task<User> WhoAmI(WhoAmIRequest request, ServerCallContext context)
    {
        var who = Caller(context);
        return Task.FromResult(new User { Name = who.Name, Role = who.Role.Name() });
    }

    private static CallerIdentity Caller(ServerCallContext context) =>
        TokenAuthenticationHandler.IdentityOf(context.GetHttpContext().User) ?? throw new RpcException(new Status(StatusCode.Unauthenticated, "not authenticated"));

    private static Role ParseRole(string role)
    {
        try
        {
            return Roles.Parse(Bounded.Text(role, "role", Bounded.MaxNameLength));
        }
        catch (ArgumentException e)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, e.Message));
        }
    }

    private static User ToProto(UserRecord u) => new()
    {
        Name = u.Name,
        Role = u.Role,
        CreatedAt = u.CreatedAt.ToString("O", CultureInfo.InvariantCulture),
        CreatedBy = u.CreatedBy,
        RevokedAt = u.RevokedAt?.ToString("O", CultureInfo.InvariantCulture) ?? "",
    };
}
