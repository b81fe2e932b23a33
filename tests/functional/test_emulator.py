"""The embedded emulator keeps connections open between requests, without mixing them up."""
from __future__ import annotations

import http.client
import json


def test_one_connection_serves_requests_one_after_another(stack):
    # Given one HTTP connection to the emulator
    connection = http.client.HTTPConnection("127.0.0.1", stack.emulator.port, timeout=10)
    # When a request carries a body nobody reads, and others follow on the same connection
    connection.request("GET", "/moto-api/data.json", body=b"x" * 100_000, headers={"Content-Type": "text/plain"})
    first = connection.getresponse()
    first.read()
    socket = connection.sock
    connection.request("POST", "/", body=json.dumps({"TableName": "absent"}).encode(), headers={
        "X-Amz-Target": "DynamoDB_20120810.DescribeTable", "Content-Type": "application/x-amz-json-1.0",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
                         "SignedHeaders=host, Signature=0"})
    second = connection.getresponse()
    body = second.read()
    # Then each is answered in turn, framed, on the connection that stays open
    assert first.status == 200 and first.getheader("Connection") is None
    assert second.status == 400 and b"ResourceNotFoundException" in body
    assert connection.sock is socket and not second.will_close
    connection.close()


def test_lambda_invocations_are_framed_and_keep_the_connection(stack):
    connection = http.client.HTTPConnection("127.0.0.1", stack.emulator.port, timeout=10)
    for _ in range(2):
        connection.request("POST", "/2015-03-31/functions/no-such-function/invocations", body=b"{}")
        response = connection.getresponse()
        assert response.status == 404 and response.getheader("Content-Length") == str(len(response.read()))
        assert not response.will_close
    connection.close()
