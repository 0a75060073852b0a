"""indexes for the audit log's and the Jobs page's newest-first lists

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 15:55:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index('ix_audit_event_organization_page', ['organization_id', 'id'], unique=False)
        batch_op.create_index('ix_audit_event_data_source_page', ['data_source_id', 'id'], unique=False)
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.create_index('ix_job_organization_recent', ['organization_id', 'created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index('ix_job_organization_recent')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_event_data_source_page')
        batch_op.drop_index('ix_audit_event_organization_page')
